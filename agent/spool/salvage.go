package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A corrupt segment X.seg is replaced in three steps, each safe to crash after:
//
//  1. its pending valid records are copied, frame by frame, to X.seg.salvage, which is fsynced;
//  2. a gap record for the lost seqs is appended (and fsynced) to the questions class;
//  3. X.seg is renamed to X.seg.corrupt, then X.seg.salvage to X.seg.
//
// A crash before step 3 leaves X.seg in place: the next Open finds the same damage, deletes the stale salvage
// copy and starts over (the gap may be reported twice, never not at all). A crash inside step 3 leaves
// X.seg.salvage without X.seg: the copy is complete, and finishSalvage puts it in place.

// finishSalvage completes a set-aside that a crash interrupted. X.seg.salvage is written and fsynced before X.seg
// is renamed to *.corrupt: if X.seg is still there the salvage copy is incomplete or redundant and recovery will
// redo it; if X.seg is gone the copy is complete and takes its place.
func finishSalvage(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix+salvageSuffix) {
			continue
		}
		orig := filepath.Join(dir, strings.TrimSuffix(name, salvageSuffix))
		if _, err := os.Stat(orig); err == nil {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
			continue
		}
		if err := os.Rename(filepath.Join(dir, name), orig); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// writeSalvage copies the pending valid records of a corrupt segment, frame by frame as they are, into
// X.seg.salvage and fsyncs it. setAside later swaps it in for the corrupt file.
func (s *Spool) writeSalvage(p *segmentPlan) error {
	c := s.classes[p.class]
	var keep []scannedRecord
	for _, r := range p.scan.records {
		if !s.cur.done(p.class, r.rec.Seq) {
			keep = append(keep, r)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	var buf []byte
	g := &segment{path: filepath.Join(c.dir, p.name+salvageSuffix), first: p.first}
	c.segs = append(c.segs, g)
	for _, r := range keep {
		off := int64(len(buf))
		buf = append(buf, p.data[r.off:r.off+int64(r.size)]...)
		c.addLive(g, scannedRecord{rec: r.rec, off: off, size: r.size})
	}
	g.size = int64(len(buf))
	if err := writeFileSync(g.path, buf); err != nil {
		return fmt.Errorf("salvage %s: %w", p.name, err)
	}
	return syncDir(c.dir)
}

// setAside renames a corrupt segment to *.corrupt and puts its salvage copy in its place.
func (s *Spool) setAside(p *segmentPlan, rec *Recovery) error {
	c := s.classes[p.class]
	path := filepath.Join(c.dir, p.name)
	dst := freeName(path)
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("set aside %s: %w", p.name, err)
	}
	salvaged := 0
	for _, g := range c.segs {
		if g.path == path+salvageSuffix {
			if err := os.Rename(g.path, path); err != nil {
				return fmt.Errorf("set aside %s: %w", p.name, err)
			}
			g.path = path
			salvaged = g.live
		}
	}
	if err := syncDir(c.dir); err != nil {
		return err
	}
	sa := SetAside{File: filepath.Join(string(p.class), filepath.Base(dst)), Reason: p.reason, Salvaged: salvaged}
	for _, l := range p.lost {
		sa.Records += l.count
		if sa.FromSeq == 0 || l.from < sa.FromSeq {
			sa.FromSeq = l.from
		}
		sa.ToSeq = max(sa.ToSeq, l.to)
	}
	rec.SetAside = append(rec.SetAside, sa)
	return nil
}

// freeName returns path + ".corrupt", or with a number before the suffix when that is taken: set-aside files are
// kept for inspection, never overwritten. The loop ends: only existing names are skipped.
func freeName(path string) string {
	dst := path + corruptSuffix
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); err != nil {
			return dst
		}
		dst = fmt.Sprintf("%s.%d%s", path, i, corruptSuffix)
	}
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
