package websession

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// A signed value verifies with its signer only: not tampered, not under another purpose or secret.
func TestSigner(t *testing.T) {
	s := NewSigner("a secret of enough length for the test", "dashboard:acme")
	v := s.Sign([]byte(`{"u":"admin"}`))
	got, err := s.Verify(v)
	require.NoError(t, err)
	require.Equal(t, `{"u":"admin"}`, string(got))
	for name, other := range map[string]Signer{
		"another purpose": NewSigner("a secret of enough length for the test", "dashboard:globex"),
		"another secret":  NewSigner("another secret of enough length", "dashboard:acme"),
	} {
		_, err := other.Verify(v)
		require.Error(t, err, name)
	}
	for _, bad := range []string{"", "x", v + "x", "e30." + v[len(v)-43:], "!!!.!!!"} {
		_, err := s.Verify(bad)
		require.Error(t, err, bad)
	}
	require.Equal(t, s.Token("csrf", "n1"), s.Token("csrf", "n1"))
	require.NotEqual(t, s.Token("csrf", "n1"), s.Token("csrf", "n2"))
	require.NotEqual(t, s.Token("ab", "c"), s.Token("a", "bc"), "parts are separated")
	require.False(t, Equal("", ""))
	require.True(t, Equal("x", "x"))
}

// Redirects stay on the site.
func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{"/devices?q=1": "/devices?q=1", "//evil.example": "/", "/\\evil": "/",
		"https://evil": "/", "": "/", "/x\r\nSet-Cookie: a": "/", "relative": "/"} {
		require.Equal(t, want, LocalPath(in), in)
	}
	r := httptest.NewRequest("GET", "http://x/", nil)
	require.False(t, SecureRequest(r))
	r.Header.Set("X-Forwarded-Proto", "HTTPS")
	require.True(t, SecureRequest(r))
}
