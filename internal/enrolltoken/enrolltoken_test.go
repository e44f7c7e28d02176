package enrolltoken

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A new token parses back to its record's ID and a secret that matches only its record.
func TestNewAndParse(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rec, token, err := New("office", "admin", now, time.Hour, 5)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(token, "sst_"+rec.ID+"."))
	id, secret, ok := Parse(token)
	require.True(t, ok)
	require.Equal(t, rec.ID, id)
	require.True(t, rec.Matches(secret))
	require.False(t, rec.Matches(secret+"x"))
	require.NotContains(t, rec.Hash, secret)
	require.Equal(t, now.Add(time.Hour), rec.ExpiresAt)
	other, token2, err := New("office", "admin", now, 0, 0)
	require.NoError(t, err)
	require.NotEqual(t, token, token2)
	require.NotEqual(t, rec.ID, other.ID)
	require.True(t, other.ExpiresAt.IsZero())
	for _, bad := range []string{"", "sst_", "sst_abc.def", "sst_ABCDEFGHIJKL.x", "sst_abcdefghijkl.", "tenant-token", "sst_abcdefghijk1.x"} {
		_, _, ok := Parse(bad)
		require.False(t, ok, bad)
	}
}

// A token admits new devices until it is revoked, expires or is used up, and says which.
func TestAdmits(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	base := Record{ID: "abcdefghijkl", ExpiresAt: now.Add(time.Hour), MaxUses: 2}
	revoked := base
	revoked.RevokedAt = now.Add(-time.Minute)
	for _, c := range []struct {
		name  string
		rec   Record
		at    time.Time
		uses  int
		want  error
		state string
	}{
		{"fresh", base, now, 0, nil, "active"},
		{"one use left", base, now, 1, nil, "active"},
		{"used up", base, now, 2, ErrUsedUp, "used up"},
		{"expired at the instant", base, now.Add(time.Hour), 0, ErrExpired, "expired"},
		{"revoked wins", revoked, now.Add(2 * time.Hour), 5, ErrRevoked, "revoked"},
		{"no limits", Record{}, now.AddDate(10, 0, 0), 1_000_000, nil, "active"},
	} {
		err := c.rec.Admits(c.at, c.uses)
		if c.want == nil {
			require.NoError(t, err, c.name)
		} else {
			require.True(t, errors.Is(err, c.want), "%s: %v", c.name, err)
		}
		require.Equal(t, c.state, c.rec.State(c.at, c.uses), c.name)
	}
}
