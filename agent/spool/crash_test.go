package spool

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

// TestCrashKill runs testdata/crashwriter as a real process, kills it with SIGKILL at a random point and checks
// that every record it saw confirmed is still there, several rounds in the same directory.
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a helper process")
	}
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the crash test builds its helper with the go command")
	bin := filepath.Join(t.TempDir(), "crashwriter")
	build := exec.Command(goBin, "build", "-o", bin, "./testdata/crashwriter")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build crashwriter: %s", out)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, seed))

	dir := t.TempDir()
	questions := map[uint64]string{} // seq -> question ID, confirmed by Append
	telemetry := map[uint64]bool{}
	acked := map[uint64]bool{}      // confirmed by Ack
	maybeAcked := map[uint64]bool{} // in a batch whose Ack may or may not have happened
	var highest uint64

	for round := range 6 {
		cmd := exec.Command(bin, dir, strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())

		killAfter := 5 + rnd.IntN(150)
		var batch []uint64
		lines := 0
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			require.NotEmpty(t, f)
			switch f[0] {
			case "Q":
				seq, _ := strconv.ParseUint(f[1], 10, 64)
				require.Greater(t, seq, highest, "seqs increase across restarts")
				highest = seq
				questions[seq] = f[2]
			case "T":
				seq, _ := strconv.ParseUint(f[1], 10, 64)
				require.Greater(t, seq, highest)
				highest = seq
				telemetry[seq] = true
			case "B":
				batch = batch[:0]
				for _, s := range strings.Split(f[1], ",") {
					seq, _ := strconv.ParseUint(s, 10, 64)
					batch = append(batch, seq)
					maybeAcked[seq] = true
				}
			case "K":
				for _, seq := range batch {
					acked[seq] = true
				}
			}
			lines++
			if lines == 1 && round == 0 {
				// The writer holds the lock: not even another process may open the spool.
				_, _, err := Open(Options{Dir: dir})
				assert.ErrorIs(t, err, ErrLocked)
			}
			if lines == killAfter {
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				// Keep reading: lines the writer printed before it died were confirmed too.
			}
		}
		err = cmd.Wait()
		require.Error(t, err, "the writer only ends by being killed; stderr: %s", stderr.String())

		s, rec, err := Open(Options{Dir: dir})
		require.NoError(t, err)
		assert.LessOrEqual(t, rec.TornTails, 1, "round %d", round)
		assert.Empty(t, rec.SetAside, "round %d", round)
		assert.Empty(t, rec.CursorReset, "round %d", round)

		got := map[uint64]protocol.Record{}
		for _, cl := range classes {
			for _, r := range pending(t, s, cl) {
				got[r.Seq] = r
			}
		}
		for seq, id := range questions {
			r, ok := got[seq]
			switch {
			case acked[seq]:
				assert.False(t, ok, "question %d was acknowledged but is pending again", seq)
			case !ok && maybeAcked[seq]:
				// Acknowledged just before the kill.
			default:
				require.True(t, ok, "round %d: confirmed question %d is lost", round, seq)
				var q protocol.Question
				require.NoError(t, json.Unmarshal(r.Data, &q))
				assert.Equal(t, id, q.ID, "question %d", seq)
			}
		}
		// A killed process's writes stay in the page cache, so even unsynced telemetry must survive a kill
		// (unlike a power cut, which this test cannot do).
		for seq := range telemetry {
			if _, ok := got[seq]; !ok && !acked[seq] && !maybeAcked[seq] {
				t.Errorf("round %d: telemetry %d is lost", round, seq)
			}
		}
		assert.Greater(t, s.Stats().NextSeq, highest)
		require.NoError(t, s.Close())
		t.Logf("round %d: killed after %d lines; %d questions, %d acknowledged, torn tails %d",
			round, killAfter, len(questions), len(acked), rec.TornTails)
	}
	require.NotEmpty(t, questions, fmt.Sprintf("seed %d", seed))
}
