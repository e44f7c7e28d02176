package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/internal/harness/localcluster"
)

// scaleFigures runs the operator binary against a real control plane (no workload runner: the tenants' pods never
// run, their objects are what is measured) and creates o.scaleTenants SupportTenants at once: the time until each
// has its children and an observed status, the operator's peak RSS, the API requests per tenant while they
// converge, and the writes during a steady-state resync.
func scaleFigures(ctx context.Context, o options, work string) error {
	cluster, err := localcluster.Start(localcluster.Options{CRDDir: "config/crd/bases", Dir: filepath.Join(work, "scale"), WithoutControllerManager: true,
		ServiceCIDR: "10.96.0.0/12"}) // room for 1,000 tenants' Services (about 5 each)
	if err != nil {
		return err
	}
	defer cluster.Stop()
	c, err := client.New(cluster.Config, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		return err
	}
	for _, ns := range []string{"supportstack-system", "tenants"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	log, err := os.Create(filepath.Join(work, "scale-operator.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	resync := 30 * time.Second
	pprofAddr, err := freeLocalAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(o.supportstack, "manager", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--pprof-bind-address="+pprofAddr,
		"--resync-period="+resync.String(), fmt.Sprintf("--max-concurrent-reconciles=%d", o.scaleWorkers))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig, "POD_NAMESPACE=supportstack-system")
	if o.scaleGOGC != "" {
		cmd.Env = append(cmd.Env, "GOGC="+o.scaleGOGC)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(2 * time.Second) // the operator's caches sync before the storm; its start is not measured
	baseRSS := rss(cmd.Process.Pid)

	before, err := apiRequests(ctx, cs)
	if err != nil {
		return err
	}
	start := time.Now()
	var created atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var createErr error
	var mu sync.Mutex
	for i := range o.scaleTenants {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			name := fmt.Sprintf("t%04d", i)
			err := c.Create(ctx, &v1alpha1.SupportTenant{ObjectMeta: metav1.ObjectMeta{Namespace: "tenants", Name: name},
				Spec: v1alpha1.SupportTenantSpec{DisplayName: name}})
			if err != nil {
				mu.Lock()
				createErr = err
				mu.Unlock()
				return
			}
			created.Add(1)
		})
	}
	wg.Wait()
	if createErr != nil {
		return createErr
	}
	createdIn := time.Since(start)
	peakRSS := baseRSS
	var converged time.Duration
	for {
		if r := rss(cmd.Process.Pid); r > peakRSS {
			peakRSS = r
		}
		n, err := observed(ctx, c, o.scaleTenants)
		if err != nil {
			return err
		}
		if n == o.scaleTenants {
			converged = time.Since(start)
			break
		}
		if time.Since(start) > 15*time.Minute {
			return fmt.Errorf("only %d of %d tenants converged in 15 minutes (log: %s)", n, o.scaleTenants, log.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
	after, err := apiRequests(ctx, cs)
	if err != nil {
		return err
	}
	// A heap profile at convergence, for whoever wants to know where the memory goes.
	if resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap"); err == nil {
		if f, err := os.Create(filepath.Join(work, "scale-heap.pprof")); err == nil {
			_, _ = io.Copy(f, resp.Body)
			f.Close()
		}
		resp.Body.Close()
	}
	// Steady state: a whole resync period and more, every tenant reconciled again, nothing written.
	time.Sleep(resync + 10*time.Second)
	if r := rss(cmd.Process.Pid); r > peakRSS {
		peakRSS = r
	}
	steady, err := apiRequests(ctx, cs)
	if err != nil {
		return err
	}
	conv := diff(after, before)
	writes := 0
	var writeParts []string
	for key, n := range diff(steady, after) {
		if strings.HasSuffix(key, " leases") {
			writes -= n // counted under the verb alone too
		}
		verb, resource, byResource := strings.Cut(key, " ")
		if verb == "GET" || verb == "LIST" || verb == "WATCH" || resource == "leases" {
			continue // reads, and kube-apiserver renewing its own identity Leases (the operator runs without election)
		}
		if byResource {
			writeParts = append(writeParts, fmt.Sprintf("%s %s %d", verb, resource, n))
		} else {
			writes += n
		}
	}
	fmt.Printf("Scale (one kube-apiserver and etcd, the operator binary, %d tenants created at once, %d reconcile workers)\n", o.scaleTenants, o.scaleWorkers)
	fmt.Printf("  created in:                    %.1f s\n", createdIn.Seconds())
	fmt.Printf("  all converged (children and status) after: %.1f s (goal 60 s)\n", converged.Seconds())
	fmt.Printf("  operator RSS:                  %.0f MB before, peak %.0f MB (goal < 300 MB)\n", float64(baseRSS)/(1<<20), float64(peakRSS)/(1<<20))
	total := 0
	var parts []string
	for _, verb := range []string{"POST", "PATCH", "PUT", "GET", "LIST", "WATCH", "DELETE", "APPLY"} {
		if n := conv[verb]; n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%s %.1f", verb, float64(n)/float64(o.scaleTenants)))
		}
	}
	fmt.Printf("  API requests per tenant while converging: %.1f (%s; the bench's own create is 1)\n", float64(total)/float64(o.scaleTenants), strings.Join(parts, ", "))
	var writeKinds []string
	for key, n := range conv {
		if verb, resource, ok := strings.Cut(key, " "); ok && verb != "GET" && verb != "LIST" && verb != "WATCH" && resource != "leases" {
			writeKinds = append(writeKinds, fmt.Sprintf("%s %s %.1f", verb, resource, float64(n)/float64(o.scaleTenants)))
		}
	}
	slices.Sort(writeKinds)
	fmt.Printf("  writes per tenant by resource:  %s\n", strings.Join(writeKinds, ", "))
	fmt.Printf("  writes during a steady-state resync (%s + 10 s): %d (must be 0) %s\n\n", resync, writes, strings.Join(writeParts, ", "))
	return nil
}

// observed counts the tenants whose status the operator has written for their generation.
func observed(ctx context.Context, c client.Client, n int) (int, error) {
	var list v1alpha1.SupportTenantList
	if err := c.List(ctx, &list, client.InNamespace("tenants")); err != nil {
		return 0, err
	}
	done := 0
	for _, t := range list.Items {
		if t.Status.ObservedGeneration == t.Generation && len(t.Status.Conditions) > 0 {
			done++
		}
	}
	return done, nil
}

var (
	requestLine   = regexp.MustCompile(`^apiserver_request_total\{([^}]*)\} (\d+)`)
	verbLabel     = regexp.MustCompile(`verb="([A-Z]+)"`)
	resourceLabel = regexp.MustCompile(`resource="([a-z]+)"`)
	subresLabel   = regexp.MustCompile(`subresource="([a-z]*)"`)
)

// apiRequests reads kube-apiserver's request counters by verb.
func apiRequests(ctx context.Context, cs *kubernetes.Clientset) (map[string]int, error) {
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<22)
	for sc.Scan() {
		m := requestLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v := verbLabel.FindStringSubmatch(m[1])
		n, _ := strconv.Atoi(m[2])
		if v != nil {
			out[v[1]] += n
			if res := resourceLabel.FindStringSubmatch(m[1]); res != nil {
				key := v[1] + " " + res[1]
				if sub := subresLabel.FindStringSubmatch(m[1]); sub != nil && sub[1] != "" {
					key += "/" + sub[1]
				}
				out[key] += n
			}
		}
	}
	return out, sc.Err()
}

func diff(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		if d := v - b[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// rss is a process's resident memory in bytes.
func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
