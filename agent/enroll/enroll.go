// Package enroll keeps the device's identity: it enrolls the device with an ingest service and stores the
// result (device ID, credential, expiry, ordered endpoints, and the enrollment token needed to enroll again)
// in one file of the state directory, mode 0600, written atomically.
package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
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

// Enroll enrolls at url with token; with prev set (an enrolled device enrolling again) it keeps prev's device
// ID. The returned state is not saved yet.
func Enroll(ctx context.Context, c *client.Client, url, token string, prev *State, agentVersion string, now time.Time) (State, error) {
	var deviceID string
	if prev != nil {
		deviceID = prev.DeviceID
	}
	resp, err := c.Enroll(ctx, url, token, Request(deviceID, agentVersion))
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
	}
	if prev != nil {
		s.URL = prev.URL
		s.MaxRecordsPerSecond = prev.MaxRecordsPerSecond
	}
	return s, nil
}
