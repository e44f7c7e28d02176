package objectstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/replication"
)

// Bucket replication between a tenant's two copies (FAILOVER.md): each side's MinIO holds a remote target that
// points at the other side's MinIO with the credentials of a user that exists there and may do no more than
// replicate into the tenant's bucket, and one replication rule to that target. Each side's operator sets up its
// own MinIO only: the users others use to reach it, its remote target and its rule.

// ReplicationRuleID names the replication rule the operator owns; rules with other IDs are left alone.
const ReplicationRuleID = "supportstack-replication"

// Changes EnsureUser and EnsureReplication make.
const (
	ChangePolicySet         Change = "PolicySet"
	ChangeUserCreated       Change = "UserCreated"
	ChangeUserRepaired      Change = "UserRepaired"
	ChangeRemoteTargetSet   Change = "RemoteTargetSet"
	ChangeRemoteTargetFixed Change = "RemoteTargetRepaired"
	ChangeReplicationRule   Change = "ReplicationRuleSet"
	ChangeStaleTargetGone   Change = "StaleRemoteTargetRemoved"
)

// NewAdminClient returns a MinIO admin client for ep.
func NewAdminClient(ep Endpoint) (*madmin.AdminClient, error) {
	u, err := parseURL(ep.URL)
	if err != nil {
		return nil, err
	}
	c, err := madmin.NewWithOptions(u.Host, &madmin.Options{
		Creds:  credentials.NewStaticV4(ep.AccessKey, ep.SecretKey, ""),
		Secure: u.Scheme == "https",
	})
	if err != nil {
		return nil, fmt.Errorf("create admin client for %s: %w", ep.URL, err)
	}
	return c, nil
}

func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse storage URL: %w", err)
	}
	if u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("storage URL %q: want http(s)://host[:port]", s)
	}
	return u, nil
}

// User is a MinIO user with a canned policy of its own.
type User struct {
	AccessKey string
	SecretKey string
	// Policy names the canned policy; Document is its JSON.
	Policy   string
	Document []byte
}

// policyDocument renders an IAM policy that allows bucketActions on the bucket and objectActions on its objects.
func policyDocument(bucket string, bucketActions, objectActions []string) []byte {
	type statement struct {
		Effect   string   `json:"Effect"`
		Action   []string `json:"Action"`
		Resource []string `json:"Resource"`
	}
	doc := struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{Version: "2012-10-17", Statement: []statement{
		{Effect: "Allow", Action: bucketActions, Resource: []string{"arn:aws:s3:::" + bucket}},
		{Effect: "Allow", Action: objectActions, Resource: []string{"arn:aws:s3:::" + bucket + "/*"}},
	}}
	b, _ := json.Marshal(doc)
	return b
}

// DataPlanePolicy allows what ingest, the dashboard and the operator's verification do in the tenant's bucket:
// read, write and list objects and their versions. Nothing else: no deletes, no bucket settings.
func DataPlanePolicy(bucket string) []byte {
	return policyDocument(bucket,
		[]string{"s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"},
		[]string{"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"})
}

// ReplicationPolicy allows the peer's MinIO to replicate into the tenant's bucket (MinIO's
// docs/bucket/replication/README.md, without object locking and tagging, which the product does not use).
func ReplicationPolicy(bucket string) []byte {
	return policyDocument(bucket,
		[]string{"s3:GetReplicationConfiguration", "s3:ListBucket", "s3:ListBucketMultipartUploads",
			"s3:GetBucketLocation", "s3:GetBucketVersioning"},
		[]string{"s3:GetReplicationConfiguration", "s3:AbortMultipartUpload", "s3:GetObject", "s3:GetObjectVersion",
			"s3:PutObject", "s3:DeleteObject", "s3:ReplicateObject", "s3:ReplicateDelete"})
}

// EnsureUser makes sure the user exists, is enabled, holds its policy and signs in with its secret key; it reads
// before it writes, so calling it on a user that is as it should be changes nothing. storageURL is the MinIO the
// admin client talks to, where the user's own sign-in is tried on bucket.
func EnsureUser(ctx context.Context, adm *madmin.AdminClient, storageURL, bucket string, u User) ([]Change, error) {
	var changes []Change
	current, err := adm.InfoCannedPolicyV2(ctx, u.Policy)
	if err != nil && !isAdminNotFound(err, "XMinioAdminNoSuchPolicy") {
		return nil, fmt.Errorf("read policy %s: %w", u.Policy, err)
	}
	if err != nil || !samePolicy(current.Policy, u.Document) {
		if err := adm.AddCannedPolicy(ctx, u.Policy, u.Document); err != nil {
			return nil, fmt.Errorf("set policy %s: %w", u.Policy, err)
		}
		changes = append(changes, ChangePolicySet)
	}

	info, err := adm.GetUserInfo(ctx, u.AccessKey)
	switch {
	case isAdminNotFound(err, "XMinioAdminNoSuchUser"):
		if err := adm.AddUser(ctx, u.AccessKey, u.SecretKey); err != nil {
			return changes, fmt.Errorf("create user for policy %s: %w", u.Policy, err)
		}
		changes = append(changes, ChangeUserCreated)
		info = madmin.UserInfo{Status: madmin.AccountEnabled}
	case err != nil:
		return changes, fmt.Errorf("read user of policy %s: %w", u.Policy, err)
	case info.Status != madmin.AccountEnabled || !signsIn(ctx, storageURL, bucket, u):
		// Disabled, or its secret changed by hand: AddUser of an existing user sets its secret and enables it.
		if err := adm.AddUser(ctx, u.AccessKey, u.SecretKey); err != nil {
			return changes, fmt.Errorf("repair user of policy %s: %w", u.Policy, err)
		}
		changes = append(changes, ChangeUserRepaired)
	}
	if info.PolicyName != u.Policy {
		//nolint:staticcheck // SetPolicy replaces the user's policies in one call, which AttachPolicy cannot.
		if err := adm.SetPolicy(ctx, u.Policy, u.AccessKey, false); err != nil {
			return changes, fmt.Errorf("attach policy %s: %w", u.Policy, err)
		}
		if !slices.Contains(changes, ChangeUserCreated) {
			changes = append(changes, ChangeUserRepaired)
		}
	}
	return changes, nil
}

// signsIn reports whether MinIO accepts the user's access key and secret: any answer but a refused key or
// signature counts (a network error cannot tell, and a wrong secret shows up as replication failures anyway).
func signsIn(ctx context.Context, storageURL, bucket string, u User) bool {
	c, err := NewFailFastClient(Endpoint{URL: storageURL, AccessKey: u.AccessKey, SecretKey: u.SecretKey})
	if err != nil {
		return false
	}
	_, err = c.GetBucketLocation(ctx, bucket)
	code := minio.ToErrorResponse(err).Code
	return code != "InvalidAccessKeyId" && code != "SignatureDoesNotMatch"
}

func isAdminNotFound(err error, code string) bool {
	var resp madmin.ErrorResponse
	return errors.As(err, &resp) && resp.Code == code
}

// samePolicy compares two IAM policy documents as MinIO does: MinIO stores the actions and resources of a
// statement as sets, so it hands a document back in another order than it was given.
func samePolicy(a, b []byte) bool {
	na, errA := normalizePolicy(a)
	nb, errB := normalizePolicy(b)
	return errA == nil && errB == nil && na == nb
}

func normalizePolicy(doc []byte) (string, error) {
	var p struct {
		Statement []struct {
			Effect   string
			Action   []string
			Resource []string
		}
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		return "", err
	}
	statements := make([]string, 0, len(p.Statement))
	for _, st := range p.Statement {
		slices.Sort(st.Action)
		slices.Sort(st.Resource)
		statements = append(statements, st.Effect+" "+strings.Join(slices.Compact(st.Action), ",")+" on "+
			strings.Join(slices.Compact(st.Resource), ","))
	}
	slices.Sort(statements)
	return strings.Join(statements, "; "), nil
}

// Remote is the peer's MinIO as this side's MinIO reaches it, with the credentials of the replication user that
// exists there.
type Remote struct {
	URL       string
	AccessKey string
	SecretKey string
	Bucket    string
}

// EnsureReplication makes sure the bucket replicates to remote: a remote target (proxying off, so that each side
// serves only what it holds and a dead peer cannot look alive) and the operator's rule, replicating new and
// existing versions and delete markers. A target of an earlier peer address or credentials is replaced, and
// targets no rule uses are removed. It returns the target's ARN. MinIO checks that the peer answers before it
// accepts a new target: while the peer is down this fails, and the caller retries.
func EnsureReplication(ctx context.Context, adm *madmin.AdminClient, c *minio.Client, bucket string, remote Remote) (string, []Change, error) {
	u, err := parseURL(remote.URL)
	if err != nil {
		return "", nil, err
	}
	targets, err := adm.ListRemoteTargets(ctx, bucket, string(madmin.ReplicationService))
	if err != nil {
		return "", nil, fmt.Errorf("list remote targets of bucket %s: %w", bucket, err)
	}
	var changes []Change
	arn := ""
	for _, t := range targets {
		if t.Endpoint != u.Host || t.Secure != (u.Scheme == "https") || t.TargetBucket != remote.Bucket ||
			t.Credentials == nil || t.Credentials.AccessKey != remote.AccessKey {
			continue
		}
		arn = t.Arn
		if !t.DisableProxy {
			t.DisableProxy = true
			if _, err := adm.UpdateRemoteTarget(ctx, &t, madmin.ProxyUpdateType); err != nil {
				return "", nil, fmt.Errorf("turn proxying off on the remote target of bucket %s: %w", bucket, err)
			}
			changes = append(changes, ChangeRemoteTargetFixed)
		}
		break
	}
	if arn == "" {
		arn, err = adm.SetRemoteTarget(ctx, bucket, &madmin.BucketTarget{
			SourceBucket: bucket,
			TargetBucket: remote.Bucket,
			Endpoint:     u.Host,
			Secure:       u.Scheme == "https",
			API:          "s3v4",
			Type:         madmin.ReplicationService,
			DisableProxy: true,
			Credentials:  &madmin.Credentials{AccessKey: remote.AccessKey, SecretKey: remote.SecretKey},
		})
		if err != nil {
			return "", nil, fmt.Errorf("set the remote target of bucket %s to %s: %w", bucket, remote.URL, err)
		}
		changes = append(changes, ChangeRemoteTargetSet)
	}

	cfg, err := c.GetBucketReplication(ctx, bucket)
	if err != nil && minio.ToErrorResponse(err).Code != "ReplicationConfigurationNotFoundError" {
		return arn, changes, fmt.Errorf("read replication of bucket %s: %w", bucket, err)
	}
	if desired, changed := withReplicationRule(cfg, arn); changed {
		if err := c.SetBucketReplication(ctx, bucket, desired); err != nil {
			return arn, changes, fmt.Errorf("set replication rule of bucket %s: %w", bucket, err)
		}
		changes = append(changes, ChangeReplicationRule)
		cfg = desired
	}

	used := map[string]bool{}
	for _, r := range cfg.Rules {
		used[r.Destination.Bucket] = true
	}
	for _, t := range targets {
		if t.Arn != arn && !used[t.Arn] {
			if err := adm.RemoveRemoteTarget(ctx, bucket, t.Arn); err != nil {
				return arn, changes, fmt.Errorf("remove stale remote target %s of bucket %s: %w", t.Endpoint, bucket, err)
			}
			changes = append(changes, ChangeStaleTargetGone)
		}
	}
	return arn, changes, nil
}

// ReplicationRule is the operator's rule: everything in the bucket, new and existing versions, delete markers and
// replica modifications (so that two-way replication carries metadata changes back), to the target arn.
// Version deletes are not replicated: records are never deleted, and each side prunes its own heartbeats.
func ReplicationRule(arn string) replication.Rule {
	return replication.Rule{
		ID:                        ReplicationRuleID,
		Status:                    replication.Enabled,
		Priority:                  1,
		DeleteMarkerReplication:   replication.DeleteMarkerReplication{Status: replication.Enabled},
		DeleteReplication:         replication.DeleteReplication{Status: replication.Disabled},
		Destination:               replication.Destination{Bucket: arn},
		SourceSelectionCriteria:   replication.SourceSelectionCriteria{ReplicaModifications: replication.ReplicaModifications{Status: replication.Enabled}},
		ExistingObjectReplication: replication.ExistingObjectReplication{Status: replication.Enabled},
	}
}

// withReplicationRule returns cfg with the operator's rule set to arn, and whether that changed it. Rules with
// other IDs are kept.
func withReplicationRule(cfg replication.Config, arn string) (replication.Config, bool) {
	want := ReplicationRule(arn)
	out := replication.Config{Role: cfg.Role}
	found, changed := false, false
	for _, r := range cfg.Rules {
		if r.ID != ReplicationRuleID {
			out.Rules = append(out.Rules, r)
			continue
		}
		found = true
		if !sameReplicationRule(r, want) {
			r, changed = want, true
		}
		out.Rules = append(out.Rules, r)
	}
	if !found {
		out.Rules = append(out.Rules, want)
		changed = true
	}
	return out, changed
}

func sameReplicationRule(r, want replication.Rule) bool {
	return r.Status == want.Status && r.Priority == want.Priority &&
		r.DeleteMarkerReplication.Status == want.DeleteMarkerReplication.Status &&
		r.DeleteReplication.Status == want.DeleteReplication.Status &&
		r.Destination.Bucket == want.Destination.Bucket &&
		r.SourceSelectionCriteria.ReplicaModifications.Status == want.SourceSelectionCriteria.ReplicaModifications.Status &&
		r.ExistingObjectReplication.Status == want.ExistingObjectReplication.Status &&
		r.Filter.Prefix == "" && r.Filter.And.Prefix == "" && len(r.Filter.And.Tags) == 0 && r.Filter.Tag.Key == ""
}
