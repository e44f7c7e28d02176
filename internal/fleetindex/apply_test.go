package fleetindex

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The agent version shown is the newest inventory's, whichever of the enrollment and the inventory a scan
// applies first (a scan reads them in parallel); before any inventory it is the enrollment's.
func TestAgentVersionDoesNotDependOnReadOrder(t *testing.T) {
	enrollment := []byte(`{"deviceId":"d","hostname":"pc","os":"linux","agentVersion":"1.3.0"}`)
	inventory := []byte(`{"seq":5,"kind":"inventory","time":"2026-03-10T12:00:00Z","data":{"platform":"ubuntu","agentVersion":"1.4.0"}}`)
	for _, enrollmentFirst := range []bool{true, false} {
		x := New(nil, Options{})
		if enrollmentFirst {
			x.applyEnrollment("d", "etag", enrollment)
			x.applyInventory("d", "inv", inventory)
		} else {
			x.applyInventory("d", "inv", inventory)
			x.applyEnrollment("d", "etag", enrollment)
		}
		d, ok := x.Device("d")
		require.True(t, ok)
		require.Equal(t, "1.4.0", d.AgentVersion, "enrollment applied first: %v", enrollmentFirst)
		require.Equal(t, "ubuntu", d.OSName())
	}
	x := New(nil, Options{})
	x.applyEnrollment("d", "etag", enrollment)
	d, _ := x.Device("d")
	require.Equal(t, "1.3.0", d.AgentVersion)
}
