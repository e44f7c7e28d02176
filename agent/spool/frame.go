package spool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"

	"github.com/supportstack/supportstack/internal/protocol"
)

const (
	// frameHeaderSize is the length and CRC that precede every payload.
	frameHeaderSize = 8
	// maxPayload bounds a frame's payload. Append refuses data above protocol.DefaultLimits.MaxRecordBytes
	// (256 KiB), so a longer length field can only be damage. It stays far below 16 MiB on purpose: the high
	// byte of every valid length is then zero, a byte that JSON text never contains, so a frame header can never
	// hide inside another frame's payload and resynchronising after damage cannot land inside a record.
	maxPayload = 1<<20 + 4<<10
	// maxSeq bounds seqs so that they stay exact for JSON readers that use doubles (dashboards in JavaScript),
	// and so that a damaged file claiming seq 2^64-1 cannot make the counter wrap around.
	maxSeq = 1<<53 - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeFrame returns the frame holding r, ready for a single write.
func encodeFrame(r protocol.Record) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write(make([]byte, frameHeaderSize))
	enc := json.NewEncoder(&buf)
	// HTML escaping would let a payload grow up to six times the data; the payload is never shown in HTML.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode record %d: %w", r.Seq, err)
	}
	frame := buf.Bytes()
	frame = frame[:len(frame)-1] // Encode's trailing newline
	payload := frame[frameHeaderSize:]
	if len(payload) > maxPayload {
		return nil, fmt.Errorf("record %d: payload of %d bytes exceeds %d", r.Seq, len(payload), maxPayload)
	}
	binary.LittleEndian.PutUint32(frame[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:8], crc32.Checksum(payload, castagnoli))
	return frame, nil
}

// decodeFrame reads the frame at the start of b. It returns the record and the frame's length, or ok=false when
// b does not start with a complete, CRC-verified frame holding a plausible record. It never reads past b.
func decodeFrame(b []byte) (r protocol.Record, size int, ok bool) {
	if len(b) < frameHeaderSize {
		return r, 0, false
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n < 2 || n > maxPayload || int64(n) > int64(len(b)-frameHeaderSize) {
		return r, 0, false
	}
	payload := b[frameHeaderSize : frameHeaderSize+int(n)]
	// Cheap test before the CRC: every payload is a JSON object. Resynchronising tries every offset of a
	// damaged region, and this keeps that from computing a CRC over up to 1 MiB at each of them.
	if payload[0] != '{' || payload[n-1] != '}' {
		return r, 0, false
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[4:8]) {
		return r, 0, false
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return protocol.Record{}, 0, false
	}
	if r.Seq == 0 || r.Seq > maxSeq || !r.Kind.Valid() || len(r.Data) == 0 || r.Data[0] != '{' {
		return protocol.Record{}, 0, false
	}
	return r, frameHeaderSize + int(n), true
}

// frameChain counts the frames in b by following their length fields alone. It reports ok only when the lengths
// lead exactly to the end of b: then a damaged region is known to have held that many records, even though
// their payloads no longer verify.
func frameChain(b []byte) (count int, ok bool) {
	for len(b) > 0 {
		if len(b) < frameHeaderSize {
			return 0, false
		}
		n := binary.LittleEndian.Uint32(b[0:4])
		if n > maxPayload || int64(n) > int64(len(b)-frameHeaderSize) {
			return 0, false
		}
		b = b[frameHeaderSize+int(n):]
		count++
	}
	return count, true
}
