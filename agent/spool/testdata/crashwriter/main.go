// Command crashwriter is the helper of the spool's crash test: it appends to a spool in a loop and reports on
// stdout what the spool has confirmed, each line only after the call returned, until it is killed.
//
//	Q <seq> <id>   Append(Questions) returned: the question is fsynced
//	T <seq>        Append(Telemetry) returned
//	B <seq>,...    Next returned this in-flight batch (it may or may not get acknowledged)
//	K <seq>        Ack(seq) returned: the batch is acknowledged
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/supportstack/supportstack/agent/spool"
	"github.com/supportstack/supportstack/internal/protocol"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: crashwriter DIR ROUND")
		os.Exit(2)
	}
	dir, round := os.Args[1], os.Args[2]
	s, _, err := spool.Open(spool.Options{
		Dir:                   dir,
		SegmentBytes:          2 << 10, // small, so that kills also land in rolls and deletions
		TelemetrySyncInterval: 5 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	// Every line is flushed before the next spool call, so whatever the test reads was confirmed first.
	say := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("crash-%s-%06d", round, i)
		data, _ := json.Marshal(protocol.Question{ID: id, Text: "why is my PC slow? " + strings.Repeat("x", i%50)})
		seq, err := s.Append(spool.Questions, protocol.KindQuestion, time.Now(), data)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		say("Q %d %s", seq, id)
		if i%3 == 0 {
			seq, err := s.Append(spool.Telemetry, protocol.KindPerf, time.Now(), json.RawMessage(`{"cpu":`+strconv.Itoa(i%100)+`}`))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			say("T %d", seq)
		}
		if i%10 == 9 {
			batch, err := s.Next(20, 1<<20)
			if err != nil || len(batch) == 0 {
				fmt.Fprintln(os.Stderr, "next:", err, len(batch))
				os.Exit(1)
			}
			seqs := make([]string, len(batch))
			for j, r := range batch {
				seqs[j] = strconv.FormatUint(r.Seq, 10)
			}
			say("B %s", strings.Join(seqs, ","))
			last := batch[len(batch)-1].Seq
			if err := s.Ack(last); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			say("K %d", last)
		}
	}
}
