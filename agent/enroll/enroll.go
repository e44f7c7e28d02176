// Package enroll keeps the device's identity: it enrolls the device with an ingest service and stores the
// result (device ID, the device's private key, credential, expiry, ordered endpoints, and the enrollment token
// needed to enroll again) in one file of the state directory, mode 0600, written atomically.
//
// The device's Ed25519 key is what makes its identity its own (internal/protocol/devicekey.go): the server
// keeps the public key and hands the device's ID to no one who cannot sign its challenge with the private key.
package enroll

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/internal/atomicfile"
	"github.com/supportstack/supportstack/internal/protocol"
)

// ErrNotEnrolled is returned by Load when the device has not been enrolled.
var ErrNotEnrolled = errors.New("device is not enrolled: run \"supportstack-agent enroll --url URL --token TOKEN\"")

// State is the device's identity as stored. It holds secrets: never log it.
type State struct {
	DeviceID   string    `json:"deviceId"`
	Credential string    `json:"credential"`
	ExpiresAt  time.Time `json:"expiresAt"`
	// Endpoints are the ingest URLs, preferred first.
	Endpoints []string `json:"endpoints"`
	// Token is the enrollment token, kept to enroll again when the credential is rejected or expires.
	Token string `json:"token"`
	// URL is where the device first enrolled; tried when no endpoint answers an enrollment.
	URL        string    `json:"url"`
	EnrolledAt time.Time `json:"enrolledAt"`
	// MaxRecordsPerSecond is the drain rate the server advertised (0: none); EndpointsRefreshedAt when the
	// endpoint list was last fetched.
	MaxRecordsPerSecond  int       `json:"maxRecordsPerSecond"`
	EndpointsRefreshedAt time.Time `json:"endpointsRefreshedAt,omitzero"`
	// PrivateKey is the seed of the device's Ed25519 key in wire form; empty in a state written by an agent
	// from before device keys, until EnsureKey makes one.
	PrivateKey string `json:"privateKey,omitempty"`
}

// HasKey reports whether the device has a key.
func (s State) HasKey() bool { return s.PrivateKey != "" }

// EnsureKey gives a device without a key a new one. The caller saves the state before it enrolls with it, so
// that a crash cannot leave the server holding a key the device lost.
func EnsureKey(s *State) error {
	if s.PrivateKey != "" {
		_, err := protocol.ParsePrivateKey(s.PrivateKey)
		return err
	}
	key, err := protocol.NewDeviceKey()
	if err != nil {
		return err
	}
	s.PrivateKey = protocol.EncodeKey(key.Seed())
	return nil
}

// SendEndpoints are the URLs the device sends to, preferred first: the server's list, then the URL the device
// enrolled through, if the list lacks it. A server that advertises addresses the device cannot reach (an
// in-cluster name, a typo) can then never strand it.
func (s State) SendEndpoints() []string {
	out := slices.Clone(s.Endpoints)
	if s.URL != "" && !slices.Contains(out, s.URL) {
		out = append(out, s.URL)
	}
	return out
}

// Load reads the state file at path.
func Load(path string) (State, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return State{}, ErrNotEnrolled
		}
		return State{}, fmt.Errorf("read enrollment: %w", err)
	}
	var s State
	if err := json.Unmarshal(raw, &s); err != nil {
		return State{}, fmt.Errorf("decode enrollment %s: %w", path, err)
	}
	if !protocol.ValidDeviceID(s.DeviceID) || s.Credential == "" || len(s.Endpoints) == 0 {
		return State{}, fmt.Errorf("enrollment %s is incomplete: enroll again", path)
	}
	return s, nil
}

// Save writes the state file atomically with mode 0600.
func Save(path string, s State) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode enrollment: %w", err)
	}
	if err := atomicfile.Write(path, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("save enrollment: %w", err)
	}
	return nil
}

// Request describes this device to the server.
func Request(deviceID, agentVersion string) protocol.EnrollRequest {
	host, _ := os.Hostname()
	return protocol.EnrollRequest{DeviceID: deviceID, Hostname: host, OS: runtime.GOOS + "/" + runtime.GOARCH, AgentVersion: agentVersion}
}

// Enroll enrolls at url with token. With prev set (an enrolled device enrolling again) it asks to keep prev's
// device ID: it presents prev's credential and answers the server's challenge with prev's key (which binds the
// key to a device enrolled before device keys). A device whose key the server does not accept (its record holds
// another) is enrolled as a new device rather than left unable to send. A prev without a device ID only lends
// its key to a new device. The device keeps prev's key, or gets one here when it has none: callers that must not
// lose it (the key may be bound before the answer arrives) save it first (EnsureKey). The returned state is not
// saved yet.
func Enroll(ctx context.Context, c *client.Client, url, token string, prev *State, agentVersion string, now time.Time) (State, error) {
	var keyed State
	if prev != nil {
		keyed = *prev
	}
	if err := EnsureKey(&keyed); err != nil {
		return State{}, fmt.Errorf("enroll: %w", err)
	}
	key, err := protocol.ParsePrivateKey(keyed.PrivateKey)
	if err != nil {
		return State{}, fmt.Errorf("enroll: %w", err)
	}
	req := Request(keyed.DeviceID, agentVersion)
	req.PublicKey = protocol.EncodeKey(key.Public().(ed25519.PublicKey))
	req.Credential = keyed.Credential
	resp, err := c.Enroll(ctx, url, token, req)
	if se := client.AsStatus(err); se != nil && se.Code == "proof_required" && se.Challenge != "" && req.DeviceID != "" {
		req.Challenge, req.Signature = se.Challenge, protocol.SignProof(key, req.DeviceID, se.Challenge)
		resp, err = c.Enroll(ctx, url, token, req)
	}
	if se := client.AsStatus(err); se != nil && se.Code == "device_key_mismatch" && req.DeviceID != "" {
		// The server binds this device ID to a key this device does not have (it lost its state, or a crash
		// lost the key it had just bound). Its identity cannot be proven any more: it goes on as a new device.
		req = Request("", agentVersion)
		req.PublicKey = protocol.EncodeKey(key.Public().(ed25519.PublicKey))
		resp, err = c.Enroll(ctx, url, token, req)
	}
	if err != nil {
		return State{}, fmt.Errorf("enroll: %w", err)
	}
	// Should the server hand out a new device ID on re-enrollment, it is accepted: records acked under the old
	// ID stay there and the spool's seq simply continues under the new one.
	s := State{
		DeviceID:   resp.DeviceID,
		Credential: resp.Credential,
		ExpiresAt:  resp.ExpiresAt,
		Endpoints:  resp.Endpoints,
		Token:      token,
		URL:        url,
		EnrolledAt: now,
		PrivateKey: keyed.PrivateKey,
	}
	if prev != nil {
		if prev.URL != "" {
			s.URL = prev.URL
		}
		s.MaxRecordsPerSecond = prev.MaxRecordsPerSecond
	}
	return s, nil
}
