package ingesttest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/ingest"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/webserver"
)

// RealBucket is the tenant's bucket of a Real service.
const RealBucket = "supportstack"

// Real is the real ingest service (internal/ingest), in this process, in front of a real MinIO server: for what
// Server does not do, such as storage outages and the answers support staff write into the bucket. MinIO comes
// from bin/minio (`make test-binaries`).
type Real struct {
	// URL is the ingest service's.
	URL string
	// Site is the MinIO server; Stop it for a storage outage.
	Site *miniotest.Server
	// Storage is a client of Site, for what the tests put into RealBucket or read from it.
	Storage *minio.Client
}

// StartReal starts MinIO with the bucket set up as the operator sets it up, and the ingest service over it, taking
// enrollment token token. Both stop with the test.
func StartReal(t testing.TB, token string) *Real {
	t.Helper()
	site := miniotest.Start(t, miniotest.Options{AccessKey: "agenttest", SecretKey: "agenttest-secret-key"})
	c, err := objectstore.NewClient(objectstore.Endpoint{URL: site.URL, AccessKey: site.AccessKey, SecretKey: site.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := objectstore.EnsureBucket(context.Background(), c, RealBucket, 7); err != nil {
		t.Fatal(err)
	}
	cfg := ingest.Config{
		StorageConfig: webserver.StorageConfig{Tenant: "acme", Bucket: RealBucket, Endpoints: []string{site.URL},
			AccessKey: site.AccessKey, SecretKey: site.SecretKey},
		EnrollmentToken: token,
		SigningKey:      []byte("agent-test-signing-key-0123456789"),
	}
	s, err := ingest.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Pool().Run(ctx) }()
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config = webserver.NewServer("", s.Handler())
	srv.Start()
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !s.Pool().Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the ingest service's storage never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Real{URL: srv.URL, Site: site, Storage: c}
}

// PutAnswer stores an answer to one of the device's questions where the dashboard stores them.
func (r *Real) PutAnswer(t testing.TB, deviceID string, a protocol.Answer) {
	t.Helper()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Storage.PutObject(context.Background(), RealBucket, protocol.AnswerKey(deviceID, a.QuestionID, a.ID),
		bytes.NewReader(raw), int64(len(raw)), minio.PutObjectOptions{ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
}

// RemoveAnswer deletes an answer from the bucket: the service no longer returns it.
func (r *Real) RemoveAnswer(t testing.TB, deviceID, questionID, answerID string) {
	t.Helper()
	err := r.Storage.RemoveObject(context.Background(), RealBucket, protocol.AnswerKey(deviceID, questionID, answerID), minio.RemoveObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
}
