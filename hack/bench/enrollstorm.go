package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// enrollStorm sends many enrollments at once to a real ingest process, as a tenant rolling its agent out to every
// PC at the same minute would, and counts the answers. Under this load the storage health checks answer late;
// the breaker must not take that for an outage: no 503 may come while no write failed. 429 overloaded, with a
// Retry-After, is ingest admitting the crowd at its pace.
func enrollStorm(ctx context.Context, o options, work string) error {
	dir := filepath.Join(work, "enrolls")
	srv, _, err := startSite(ctx, dir)
	if err != nil {
		return err
	}
	defer srv.Close()
	url, stop, err := startIngest(o.supportstack, srv, dir)
	if err != nil {
		return err
	}
	defer stop()

	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 0}}
	body, _ := json.Marshal(protocol.EnrollRequest{Hostname: "storm", OS: "linux", AgentVersion: "bench"})
	codes := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range o.enrolls {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+protocol.PathEnroll, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer bench-token")
			key := "connection error"
			if resp, err := hc.Do(req); err == nil {
				var e protocol.Error
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				key = fmt.Sprint(resp.StatusCode)
				if resp.StatusCode != http.StatusOK && json.Unmarshal(raw, &e) == nil {
					key += " " + e.Code
				}
			}
			mu.Lock()
			codes[key]++
			mu.Unlock()
		})
	}
	wg.Wait()
	took := time.Since(start)
	var keys []string
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("Enrollment storm (%d enrollments at once against one ingest process)\n", o.enrolls)
	fmt.Printf("  answered within %.1f s:", took.Seconds())
	for _, k := range keys {
		fmt.Printf("  %s: %d", k, codes[k])
	}
	fmt.Printf("\n  503 answers: %d   target: 0 while storage is healthy\n\n", codes["503 storage_unavailable"])
	return nil
}
