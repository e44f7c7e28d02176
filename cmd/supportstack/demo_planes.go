package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/dashboard"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/protocol"
)

// runDemoOnTwoPlanes starts two local clusters, east and west, each with its operator and its local workload
// runner, joined by PeerClusters; applies the sample tenant in east, replicated to west; and shows a question
// asked through east's ingest arriving in west's copy.
func runDemoOnTwoPlanes(ctx context.Context, f demoFlags, sample *v1alpha1.SupportTenant) error {
	log := ctrl.Log.WithName("demo")
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	dir := filepath.Join(f.stateDir, "planes")
	// The control planes start empty, so the tenant gets new credentials: MinIO data left by an earlier demo
	// could not be opened with them.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear the previous demo: %w", err)
	}
	// Two operators share this process: the harness turns their metrics and health endpoints off.
	opts := f.opts
	env, err := planes.Start(planes.Options{SupportstackBin: self, Operator: opts, Dir: dir, CRDDir: f.crds}, "east", "west")
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			log.Error(err, "Stopping the planes")
		}
	}()
	east, west := env.Plane("east"), env.Plane("west")
	kubectl := "kubectl"
	if p, err := localbin.ControlPlaneDir(); err == nil {
		kubectl = filepath.Join(p, "kubectl")
	}
	fmt.Printf("Two local clusters are up, each with its operator; east's PeerCluster leads to west and west's to east.\n")
	for _, p := range []*planes.Plane{east, west} {
		fmt.Printf("  %s: export KUBECONFIG=%s   (%s get supporttenants,peerclusters -A)\n", p.Name, absPath(p.Cluster.Kubeconfig), kubectl)
	}

	if sample.Spec.Replication == nil {
		sample.Spec.Replication = &v1alpha1.ReplicationSpec{Peer: "west"}
	}
	if sample.Spec.Failover == nil {
		// Shorter than the defaults (15s, 60s), so that a break and a heal are watched in a minute.
		sample.Spec.Failover = &v1alpha1.FailoverSpec{Mode: v1alpha1.FailoverAutomatic,
			UnhealthyAfter: metav1.Duration{Duration: 5 * time.Second}, HealthyFor: metav1.Duration{Duration: 10 * time.Second}}
	}
	if err := applySample(ctx, east.Admin, sample); err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(sample)
	start := time.Now()
	for _, p := range []*planes.Plane{east, west} {
		if err := waitConditions(ctx, p.Admin, key, v1alpha1.ConditionReady, v1alpha1.ConditionReplicating); err != nil {
			return ignoreCanceled(err)
		}
		role := "home"
		if p == west {
			role = "standby"
		}
		fmt.Printf("%s: tenant %s (%s) is Ready and replicating %s after apply\n", p.Name, key, role, time.Since(start).Round(time.Millisecond))
	}
	// Addresses that stay while the dashboards' pods restart (they do when the preferred copy changes).
	for _, p := range []*planes.Plane{east, west} {
		if url, err := env.PublicURL(p.Name, key.Namespace, naming.Dashboard(key.Name), 80); err == nil {
			fmt.Printf("%s dashboard: %s/   status page: %s/status\n", p.Name, url, url)
		}
	}
	shared := &corev1.Secret{}
	if err := east.Admin.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: naming.SharedSecret(key.Name)}, shared); err == nil {
		fmt.Printf("Sign in to either dashboard as %s with password %s\n  (kubectl get secret %s -n %s -o jsonpath='{.data.%s}' | base64 -d)\n",
			dashboard.AdminUser, shared.Data[naming.SecretKeyDashboardAdminPassword], naming.SharedSecret(key.Name), key.Namespace,
			naming.SecretKeyDashboardAdminPassword)
	}
	a, err := startDemoAgent(ctx, f.stateDir, "agent", env, east, key)
	// Two more PCs, so that the dashboard's lists have something to sort.
	for i := 2; err == nil && i <= 3; i++ {
		_, err = startDemoAgent(ctx, f.stateDir, fmt.Sprintf("agent-%d", i), env, east, key)
	}
	if err == nil {
		err = a.askUntilStored(ctx, west, key, "Asked in east: can west read this?", "A question asked through east's ingest")
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		fmt.Printf("Could not show a question travelling from east to west: %v\n", err)
	} else {
		fmt.Printf("Three agents on this machine keep reporting to east (they know west's ingest too and move there when east is gone).\n"+
			"Ask one something: %s ask --state-dir %s \"Why is my PC slow?\"\n"+
			"answer it in a dashboard's Questions page, and see the answer on the PC: %s status --state-dir %s\n", a.bin, a.dir, a.bin, a.dir)
	}
	if err := startDemoPortal(ctx, f.crds, east); err != nil {
		fmt.Println("The portal did not start:", err)
	}
	go watchFailover(ctx, east, key)
	go watchFailover(ctx, west, key)
	go demoCommands(ctx, os.Stdin, env, east, west, key, kubectl, a)
	<-ctx.Done()
	fmt.Println("Stopping. Logs and data stay in", dir, "until the next demo.")
	return nil
}

// demoAgent is the agent the demo enrolls with east's ingest and keeps running.
type demoAgent struct {
	bin, dir, device string
}

func (a demoAgent) cli(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, a.bin, append(args, "--state-dir", a.dir)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("supportstack-agent %s: %w: %s", args[0], err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// askUntilStored asks a question and waits until a plane's copy of the bucket holds it; it prints how long that
// took and the stored object.
func (a demoAgent) askUntilStored(ctx context.Context, p *planes.Plane, key client.ObjectKey, text, what string) error {
	out, err := a.cli(ctx, "ask", text)
	if err != nil {
		return err
	}
	asked := time.Now()
	question, _, _ := strings.Cut(out, " ")
	store, err := p.RootStorage(ctx, key)
	if err != nil {
		return err
	}
	object := protocol.QuestionKey(a.device, question)
	var body []byte
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		opts := minio.GetObjectOptions{}
		opts.Internal.ReplicationProxyRequest = "false"
		obj, err := store.GetObject(ctx, naming.BucketName, object, opts)
		if err != nil {
			return false, nil
		}
		defer obj.Close()
		if body, err = io.ReadAll(obj); err != nil {
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("question %s did not reach %s: %w", question, p.Name, err)
	}
	fmt.Printf("%s is in %s's copy of the bucket %s later: %s\n  %s\n", what, p.Name,
		time.Since(asked).Round(time.Millisecond), object, strings.TrimSpace(string(body)))
	return nil
}

// startDemoAgent enrolls an agent with east's ingest and runs it until ctx ends.
func startDemoAgent(ctx context.Context, stateDir, name string, env *planes.Env, east *planes.Plane, key client.ObjectKey) (demoAgent, error) {
	self, err := os.Executable()
	if err != nil {
		return demoAgent{}, err
	}
	a := demoAgent{bin: filepath.Join(filepath.Dir(self), "supportstack-agent"), dir: absPath(filepath.Join(stateDir, name))}
	if _, err := os.Stat(a.bin); err != nil {
		return a, fmt.Errorf("no agent next to this binary (make demo builds it): %w", err)
	}
	// The agent reaches east's ingest as a PC would, through an address that stays while pods restart.
	ingest, err := env.PublicURL(east.Name, key.Namespace, naming.Ingest(key.Name), 80)
	if err != nil {
		return a, err
	}
	shared := &corev1.Secret{}
	if err := east.Admin.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: naming.SharedSecret(key.Name)}, shared); err != nil {
		return a, err
	}
	tokenFile := absPath(filepath.Join(stateDir, "enrollment-token"))
	if err := os.WriteFile(tokenFile, shared.Data[naming.SecretKeyEnrollmentToken], 0o600); err != nil {
		return a, err
	}
	if err := os.RemoveAll(a.dir); err != nil {
		return a, err
	}
	if _, err := a.cli(ctx, "enroll", "--url", ingest, "--token-file", tokenFile); err != nil {
		return a, err
	}
	status, err := a.cli(ctx, "status", "--json")
	if err != nil {
		return a, err
	}
	var st struct {
		Enrollment struct {
			DeviceID string `json:"deviceId"`
		} `json:"enrollment"`
	}
	if err := json.Unmarshal([]byte(status), &st); err != nil {
		return a, fmt.Errorf("read the agent's status: %w", err)
	}
	a.device = st.Enrollment.DeviceID
	// A sample every 2 s instead of every minute, so that the agent's records flow through a break and a heal, and
	// answers fetched every 5 s.
	daemon := exec.CommandContext(ctx, a.bin, "run", "--state-dir", a.dir, "--perf-interval=2s", "--answer-interval=5s")
	daemon.Stdout, daemon.Stderr = io.Discard, io.Discard
	if err := daemon.Start(); err != nil {
		return a, err
	}
	// The agent keeps reporting for the rest of the demo.
	go func() {
		<-ctx.Done()
		_ = daemon.Process.Kill()
		_ = daemon.Wait()
	}()
	return a, nil
}

// watchFailover prints every change of a plane's failover state and drills, as kubectl get -w would. A plane that
// is gone prints nothing.
func watchFailover(ctx context.Context, p *planes.Plane, key client.ObjectKey) {
	last, lastDrill := "", ""
	_ = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		t := &v1alpha1.SupportTenant{}
		if err := p.Admin.Get(ctx, key, t); err != nil || t.Status.Failover == nil || t.Status.Replication == nil {
			return false, nil
		}
		f := t.Status.Failover
		line := fmt.Sprintf("%s: %s, phase %s, active site %s: %s", p.Name, f.State, t.Status.Phase, t.Status.Storage.ActiveSite, f.Message)
		if lf := t.Status.Replication.LastFailover; lf != nil && lf.FailedBackAt != nil && f.State == v1alpha1.FailoverNormal {
			line += fmt.Sprintf(" (last failover: began %s, RTO %s, failed back %s, verified %v)", lf.At.Format(time.TimeOnly),
				durationOrNone(lf.RTO), lf.FailedBackAt.Format(time.TimeOnly), lf.Verified)
		}
		if line != last {
			fmt.Printf("%s  %s\n", time.Now().Format(time.TimeOnly), line)
			last = line
		}
		if d := t.Status.Replication.LastDrill; d != nil {
			line := fmt.Sprintf("%s: drill %s %s", p.Name, d.Name, d.Phase)
			if d.Message != "" {
				line += ": " + d.Message
			}
			if line != lastDrill {
				fmt.Printf("%s  %s\n", time.Now().Format(time.TimeOnly), line)
				lastDrill = line
			}
		}
		return false, nil
	})
}

func durationOrNone(d *metav1.Duration) string {
	if d == nil {
		return "not recorded"
	}
	return d.Duration.String()
}

// demoCommands reads commands from in: stopping and restarting east's storage, and a planned switchover.
func demoCommands(ctx context.Context, in io.Reader, env *planes.Env, east, west *planes.Plane, key client.ObjectKey, kubectl string, a demoAgent) {
	help := func() {
		fmt.Print("Type a command and Enter:\n" +
			"  break    stop east's MinIO for the tenant (the founding incident): writes move to west within a second,\n" +
			"           the failover is declared after unhealthyAfter, the dashboards show a banner\n" +
			"  heal     start it again: after healthyFor the operator drives the outage's writes across, verifies both\n" +
			"           copies, then serves from east again\n" +
			"  status   east's failover state now\n" +
			"  drill    a disaster-recovery drill on east's tenant: east's copy refuses the data plane (nothing stops),\n" +
			"           the RTO and RPO are measured, access is restored and both copies verified (the annotation below)\n" +
			"  lose     lose all of east at once (API server, operator, ingest, MinIO): the agent moves to west's ingest,\n" +
			"           west's tenant serves alone. East does not come back until the demo restarts\n" +
			"A planned switchover and back (with east's KUBECONFIG):\n" +
			"  " + kubectl + " annotate supporttenant " + key.Name + " -n " + key.Namespace + " supportstack.io/active-site=peer\n" +
			"  " + kubectl + " annotate supporttenant " + key.Name + " -n " + key.Namespace + " supportstack.io/active-site-\n" +
			"A drill by hand: " + kubectl + " annotate supporttenant " + key.Name + " -n " + key.Namespace +
			" supportstack.io/drill=$(date +%s) --overwrite\n" +
			"Ctrl-C stops the demo.\n")
	}
	help()
	var release func()
	sc := bufio.NewScanner(in)
	for sc.Scan() && ctx.Err() == nil {
		switch strings.TrimSpace(sc.Text()) {
		case "break":
			if release != nil {
				fmt.Println("east's MinIO is already stopped: type heal")
				continue
			}
			r, err := east.Runner.Hold(key.Namespace, naming.MinIO(key.Name)+"-0")
			if err != nil {
				fmt.Println("break:", err)
				continue
			}
			release = r
			fmt.Println("east's MinIO is stopped.")
		case "heal":
			if release == nil {
				fmt.Println("east's MinIO runs: type break first")
				continue
			}
			release()
			release = nil
			fmt.Println("east's MinIO starts again.")
		case "drill":
			name := "demo-" + time.Now().Format("150405")
			t := &v1alpha1.SupportTenant{}
			err := east.Admin.Get(ctx, key, t)
			if err == nil {
				patch := client.MergeFrom(t.DeepCopy())
				metav1.SetMetaDataAnnotation(&t.ObjectMeta, v1alpha1.AnnotationDrill, name)
				err = east.Admin.Patch(ctx, t, patch)
			}
			if err != nil {
				fmt.Println("drill:", err)
				continue
			}
			fmt.Printf("Drill %s asked for (annotation %s=%s).\n", name, v1alpha1.AnnotationDrill, name)
		case "lose":
			if err := env.StopPlane(east.Name); err != nil {
				fmt.Println("lose:", err)
				continue
			}
			fmt.Println("East is gone: its API server, operator, ingest and MinIO are stopped. Watch west.")
			if a.device != "" {
				go func() {
					if err := a.askUntilStored(ctx, west, key, "Asked after east was lost", "A question asked after east was lost"); err != nil {
						fmt.Println("lose:", err)
					}
				}()
			}
		case "status":
			for _, name := range []string{"east", "west"} {
				t := &v1alpha1.SupportTenant{}
				if err := env.Plane(name).Admin.Get(ctx, key, t); err != nil || t.Status.Failover == nil {
					fmt.Printf("%s: no answer from its API server\n", name)
					continue
				}
				fmt.Printf("%s: %s (%s): %s\n", name, t.Status.Failover.State, t.Status.Failover.Reason, t.Status.Failover.Message)
			}
		case "":
		default:
			help()
		}
	}
	if release != nil {
		release()
	}
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
