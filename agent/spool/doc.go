// Package spool is the agent's durable on-disk queue of records waiting for the ingest service to acknowledge
// them. It carries the first promise of the design, "nothing acknowledged is ever lost": a question is on disk
// (fsynced) before Append returns, a record leaves the spool only when the server acknowledged it (Ack) or when
// telemetry had to make room, and then a gap record says so.
//
// # Classes
//
// Questions are never evicted; when their budget is used up Append fails with ErrFull. Telemetry (inventory,
// perf, events) has a byte budget of its own; beyond it the oldest telemetry records that are not in flight are
// dropped and one gap record (protocol.KindGap, reason "evicted") is appended to the questions class.
//
// Seqs come from one per-device counter across both classes. They are strictly increasing, never reused, and
// survive restarts: the high-water mark is kept in the cursor file, so it stays even when every segment has been
// acknowledged and deleted.
//
// # Files
//
//	Dir/lock                       flock held while a Spool is open (ErrLocked otherwise)
//	Dir/cursor.json                per-class acknowledged-through seq, high-water seq, last ack, evicted ranges
//	Dir/inflight.json              the seqs of the in-flight batch, so Next returns the same batch after a restart
//	Dir/<class>/<first seq>.seg    append-only segment files, the name is the 20-digit seq of the first record
//	Dir/<class>/*.corrupt          segments set aside by recovery, kept for inspection, never read again
//
// A segment is a sequence of frames:
//
//	[4-byte little-endian payload length][4-byte little-endian CRC-32C of payload][payload]
//
// where the payload is the JSON of a protocol.Record. Each frame is written with one write call. cursor.json and
// inflight.json are replaced atomically (write temp, fsync, rename, fsync dir) and carry a CRC of their own, so
// a damaged file is recognised rather than misread.
//
// # Recovery
//
// Open scans every segment. A damaged tail of the newest segment of a class (a partial frame, or a frame whose
// CRC does not match, with nothing valid after it) is what a crash during a write leaves: it is truncated to the
// last good frame and counted in Recovery.TornTails. Damage anywhere else is corruption. The scanner then looks
// for the next offset where a valid frame starts (a frame length is below 16 MiB, so its high byte is zero,
// which JSON text never contains: a frame header cannot hide inside a payload), so the records after the damage
// survive as well as those before it. They are copied into a new segment, the damaged file is renamed to
// *.corrupt, and a gap record (reason "corrupt") names the seqs that were lost. A cursor or in-flight file that
// cannot be read is set aside too: the spool then resends what it cannot prove was acknowledged (the server
// deduplicates by device and seq) and moves the seq counter past anything it might have issued.
package spool
