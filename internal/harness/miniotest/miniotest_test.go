package miniotest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"
)

// TestStartSet: four servers form one erasure set: an object written through one is read through another, and
// with a server down the set still takes writes and serves reads.
func TestStartSet(t *testing.T) {
	set, err := StartSet(Options{}, 4, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, s := range set {
			s.Close()
		}
	})
	client := func(s *Server) *minio.Client {
		mc, err := minio.New(s.Addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
		require.NoError(t, err)
		return mc
	}
	ctx := context.Background()
	put := func(mc *minio.Client, key, body string) {
		_, err := mc.PutObject(ctx, "bucket", key, bytes.NewReader([]byte(body)), int64(len(body)), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	read := func(mc *minio.Client, key string) string {
		obj, err := mc.GetObject(ctx, "bucket", key, minio.GetObjectOptions{})
		require.NoError(t, err)
		defer obj.Close()
		b, err := io.ReadAll(obj)
		require.NoError(t, err)
		return string(b)
	}
	require.NoError(t, client(set[0]).MakeBucket(ctx, "bucket", minio.MakeBucketOptions{}))
	put(client(set[0]), "k", "written through server 0")
	require.Equal(t, "written through server 0", read(client(set[3]), "k"))

	set[1].Stop()
	put(client(set[2]), "k2", "written with server 1 down")
	require.Equal(t, "written with server 1 down", read(client(set[0]), "k2"))
	require.Equal(t, "written through server 0", read(client(set[3]), "k"))
}
