package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/supportstack/supportstack/internal/harness/stored"
	"github.com/supportstack/supportstack/internal/protocol"
)

// dashboardFigures fills a bucket the way ingest lays it out with a customer of realistic size — o.dashDevices
// devices with an inventory and a recent sample each, o.dashHistory of them with 30 days of per-minute samples,
// and questions — then starts the dashboard binary on it cold and measures how long its index takes to read the
// bucket, and the p50/p95 of the device list and of a device page with its 7-day chart, signed in over HTTP.
func dashboardFigures(ctx context.Context, o options, work string) error {
	srv, mc, err := startSite(ctx, filepath.Join(work, "dashboard"))
	if err != nil {
		return err
	}
	defer srv.Close()
	now := time.Now().UTC().Truncate(time.Minute)
	fillStart := time.Now()
	history, objects, records, err := fillFleet(ctx, mc, o.dashDevices, o.dashHistory, now)
	if err != nil {
		return err
	}
	fmt.Printf("Dashboard (one process, one single-drive MinIO; %d devices, %d of them with 30 days of per-minute samples)\n", o.dashDevices, o.dashHistory)
	fmt.Printf("  bucket filled:                 %d objects, %d records in %s\n", objects, records, time.Since(fillStart).Round(time.Second))

	const password = "bench-admin-password"
	base, stop, built, scan, err := startDashboard(o, srv.URL, srv.AccessKey, srv.SecretKey, password, filepath.Join(work, "dashboard.log"))
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("  index built from cold:                 %.1f s after the process started (its scan: %.1f s)\n", built.Seconds(), scan)

	hc, err := signIn(base, password)
	if err != nil {
		return err
	}
	lists := []string{"/devices", "/devices?sort=memory&dir=desc", "/devices?q=host-4", "/devices?health=stale",
		"/devices?os=windows+11&sort=seen", "/devices?page=50"}
	var listTimes []float64
	for i := range o.dashRequests {
		d, err := timedGet(hc, base+lists[i%len(lists)])
		if err != nil {
			return err
		}
		listTimes = append(listTimes, d)
	}
	// A device page lists the device's days of batches and reads those not in its cache. The index's scan
	// has read the last 7 days (its window) already; a 30-day chart reads the 23 days before from MinIO on its
	// first view.
	pageTimes := func(period string) (first, again []float64, err error) {
		for i := range o.dashRequests {
			d, err := timedGet(hc, base+"/devices/"+history[i%len(history)]+"?period="+period)
			if err != nil {
				return nil, nil, err
			}
			if i < len(history) {
				first = append(first, d)
			} else {
				again = append(again, d)
			}
		}
		return first, again, nil
	}
	week, weekAgain, err := pageTimes("7d")
	if err != nil {
		return err
	}
	month, monthAgain, err := pageTimes("30d")
	if err != nil {
		return err
	}
	report := func(name string, v []float64) {
		sort.Float64s(v)
		fmt.Printf("  %-38s p50 %6.1f ms   p95 %6.1f ms   (%d requests)\n", name+":", quantile(v, .5)*1000, quantile(v, .95)*1000, len(v))
	}
	// A restarted dashboard (a new replica, a pod moved by a failover) starts from the snapshot the first one
	// stored after its first scan.
	stop()
	_, stop, built, scan, err = startDashboard(o, srv.URL, srv.AccessKey, srv.SecretKey, password, filepath.Join(work, "dashboard-2.log"))
	if err != nil {
		return err
	}
	fmt.Printf("  index built after a restart:           %.1f s after the process started (snapshot, then a scan of %.1f s)\n", built.Seconds(), scan)
	report("device list page", listTimes)
	report("device page, 7-day chart", append(week, weekAgain...))
	report("device page, 30-day chart, first view", month)
	if len(monthAgain) > 0 {
		report("device page, 30-day chart, again", monthAgain)
	}
	fmt.Println()
	return nil
}

// startDashboard starts the dashboard binary on the bucket and waits until its index is built.
func startDashboard(o options, storageURL, accessKey, secretKey, password, logPath string) (base string, stop func(), built time.Duration, scan float64, err error) {
	addr, err := freeLocalAddr()
	if err != nil {
		return "", nil, 0, 0, err
	}
	log, err := os.Create(logPath)
	if err != nil {
		return "", nil, 0, 0, err
	}
	started := time.Now()
	cmd := exec.Command(o.supportstack, "dashboard", "--listen-address="+addr, "--tenant=bench", "--bucket="+bucket,
		"--storage-endpoints="+storageURL, "--display-name=Bench", "--index-interval=30s")
	cmd.Env = append(os.Environ(), "STORAGE_ACCESS_KEY="+accessKey, "STORAGE_SECRET_KEY="+secretKey,
		"DASHBOARD_ADMIN_PASSWORD="+password, "DASHBOARD_SESSION_KEY=bench-session-key-0123456789abcdef0123")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return "", nil, 0, 0, err
	}
	var once sync.Once
	stop = func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() }) }
	base = "http://" + addr
	for {
		m, err := indexMetrics(base)
		if err == nil && m["supportstack_dashboard_index_built"] == 1 {
			return base, stop, time.Since(started), m["supportstack_dashboard_index_scan_seconds"], nil
		}
		if time.Since(started) > 10*time.Minute {
			stop()
			return "", nil, 0, 0, fmt.Errorf("the dashboard's index was not built within 10 minutes (log: %s)", logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fillFleet writes devices as ingest lays them out and returns the IDs of those with history.
func fillFleet(ctx context.Context, mc *minio.Client, devices, withHistory int, now time.Time) (history []string, objects, records int, err error) {
	type object struct {
		key  string
		data []byte
	}
	work := make(chan object, 64)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range 16 {
		wg.Go(func() {
			for o := range work {
				_, err := mc.PutObject(ctx, bucket, o.key, bytes.NewReader(o.data), int64(len(o.data)), minio.PutObjectOptions{})
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		})
	}
	put := func(key string, data []byte) {
		objects++
		work <- object{key, data}
	}
	putBatch := func(device string, recs []protocol.Record) {
		key, data, err := stored.Batch(device, recs)
		if err != nil {
			mu.Lock()
			firstErr = err
			mu.Unlock()
			return
		}
		put(key, data)
	}
	oses := []string{"windows 11", "windows 10", "ubuntu 24.04", "macos 15"}
	cpus := []string{"Intel Core i5-1235U", "Intel Core i7-1365U", "AMD Ryzen 5 7530U", "Apple M2"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range devices {
		id := fmt.Sprintf("%032x", i+1)
		host := fmt.Sprintf("host-%05d", i)
		enrolled := now.Add(-time.Duration(rng.IntN(90*24)) * time.Hour)
		dev, _ := json.Marshal(map[string]any{"deviceId": id, "hostname": host, "os": "windows/amd64", "agentVersion": "1.0.0",
			"enrolledAt": enrolled, "lastEnrolledAt": enrolled})
		put(protocol.DeviceKey(id), dev)
		inv, _ := json.Marshal(protocol.Record{Seq: 1, Kind: protocol.KindInventory, Time: enrolled, Data: mustJSON(map[string]any{
			"hostname": host, "os": "windows", "platform": oses[i%len(oses)][:strings.IndexByte(oses[i%len(oses)], ' ')],
			"platformVersion": oses[i%len(oses)][strings.IndexByte(oses[i%len(oses)], ' ')+1:], "cpu": map[string]any{"model": cpus[i%len(cpus)], "logicalCores": 8},
			"memoryBytes": uint64(8+8*(i%3)) << 30, "disks": []any{map[string]any{"mount": "C:", "fsType": "NTFS", "totalBytes": 512 << 30}}})})
		put(protocol.InventoryKey(id, enrolled, 1), inv)
		if i < withHistory {
			history = append(history, id)
			continue
		}
		// The rest report now and then: one recent batch of a few samples (some devices stopped weeks ago).
		last := now.Add(-time.Duration(rng.IntN(30*24*60)) * time.Minute / time.Duration(1+rng.IntN(20)))
		var recs []protocol.Record
		for s := range 5 {
			recs = append(recs, perfRecord(uint64(2+s), last.Add(time.Duration(s-5)*time.Minute)))
		}
		records += len(recs)
		putBatch(id, recs)
		if i%5 == 0 {
			q := protocol.Question{ID: fmt.Sprintf("q-%08d", i), Text: "The VPN disconnects every few minutes since the update"}
			rec, _ := json.Marshal(protocol.Record{Seq: 7, Kind: protocol.KindQuestion, Time: last, Data: mustJSON(q)})
			put(protocol.QuestionKey(id, q.ID), rec)
		}
	}
	// 30 days of per-minute samples, in 1,000-record batches as an agent sends a backlog.
	for _, id := range history {
		seq := uint64(2)
		for t := now.Add(-30 * 24 * time.Hour); t.Before(now); {
			recs := make([]protocol.Record, 0, 1000)
			for ; len(recs) < 1000 && t.Before(now); t = t.Add(time.Minute) {
				recs = append(recs, perfRecord(seq, t))
				seq++
			}
			records += len(recs)
			putBatch(id, recs)
		}
	}
	close(work)
	wg.Wait()
	return history, objects, records, firstErr
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

var metricLine = regexp.MustCompile(`(?m)^(supportstack_dashboard_index_\w+) (\S+)$`)

func indexMetrics(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, m := range metricLine.FindAllStringSubmatch(string(b), -1) {
		out[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	return out, nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in through the sign-in form and returns a client that carries the session.
func signIn(base, password string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(base + "/login")
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if m == nil {
		return nil, fmt.Errorf("no sign-in form at %s/login", base)
	}
	resp, err = hc.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "user": {"admin"}, "password": {password}, "next": {"/"}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.Request.URL.Path == "/login" {
		return nil, fmt.Errorf("sign-in refused")
	}
	return hc, nil
}

// timedGet fetches a page whole and returns the seconds it took.
func timedGet(hc *http.Client, u string) (float64, error) {
	start := time.Now()
	resp, err := hc.Get(u)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path == "/login" {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return time.Since(start).Seconds(), nil
}
