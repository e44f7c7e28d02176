package webserver

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

// The operator renders StorageConfig.Args into a pod and the server reads them back with BindFlags: one
// contract, so a flag renamed on one side cannot go unnoticed on the other.
func TestArgsRoundTrip(t *testing.T) {
	want := StorageConfig{ListenAddress: "$(POD_IP):8080", Tenant: "acme", Bucket: "supportstack",
		Endpoints: []string{"http://acme-minio.tenant-acme.svc:9000", "https://acme-s3.west.example.com"}}
	var got StorageConfig
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	got.BindFlags(fs)
	require.NoError(t, fs.Parse(want.Args()))
	require.Equal(t, want, got)
	for _, a := range want.Args() {
		require.NotContains(t, a, "secret", "credentials never travel as flags")
	}
	require.Equal(t, want.Endpoints[0], got.LocalEndpoint(), "without --local-storage-endpoint the first endpoint is this cluster's")

	// Failed over: the peer's copy first, this cluster's named.
	want = StorageConfig{ListenAddress: "$(POD_IP):8080", Tenant: "acme", Bucket: "supportstack",
		Endpoints: []string{"https://acme-s3.west.example.com", "http://acme-minio.tenant-acme.svc:9000"},
		Local:     "http://acme-minio.tenant-acme.svc:9000"}
	got = StorageConfig{}
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	got.BindFlags(fs)
	require.NoError(t, fs.Parse(want.Args()))
	require.Equal(t, want, got)
	require.Equal(t, want.Local, got.LocalEndpoint())
}

func TestLoadEnvNamesWhatIsMissing(t *testing.T) {
	t.Setenv(EnvStorageAccessKey, "")
	t.Setenv(EnvStorageSecretKey, "s3cr3t-s3cr3t")
	c := StorageConfig{Tenant: "acme"}
	err := c.LoadEnv()
	require.ErrorContains(t, err, "--"+FlagStorageEndpoints)
	require.ErrorContains(t, err, EnvStorageAccessKey)
	require.NotContains(t, err.Error(), "s3cr3t")
}
