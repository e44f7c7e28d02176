package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Object keys in a tenant's bucket. Every object has one deterministic key, so a retried write overwrites the
// same object and two-way replication never conflicts.

// DeviceKey is a device's enrollment record.
func DeviceKey(deviceID string) string { return "devices/" + deviceID + "/device.json" }

// Batch keys are dated within these bounds.
var (
	EarliestKeyTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	LatestKeyTime   = time.Date(2199, 12, 31, 0, 0, 0, 0, time.UTC)
)

// ClampKeyTime is t in UTC within the bounds of batch key dates.
func ClampKeyTime(t time.Time) time.Time {
	t = t.UTC()
	switch {
	case t.Before(EarliestKeyTime):
		return EarliestKeyTime
	case t.After(LatestKeyTime):
		return LatestKeyTime
	}
	return t
}

// BatchKey is where a batch's records are stored: dated by the first record's own time, so that a retry maps
// to the same key whenever it arrives, and named by its seq range, zero-padded so that keys sort by seq. A PC
// whose clock is far off (a dead CMOS battery says 1980) still gets its records stored, never refused: the
// date is clamped into 2000–2199, which keeps the key deterministic.
func BatchKey(deviceID string, first time.Time, firstSeq, lastSeq uint64) string {
	t := ClampKeyTime(first)
	return fmt.Sprintf("devices/%s/records/%04d/%02d/%02d/%020d-%020d.ndjson.gz", deviceID, t.Year(), t.Month(), t.Day(), firstSeq, lastSeq)
}

// ParseBatchKey reads the seq range out of a key that BatchKey made for the device.
func ParseBatchKey(deviceID, key string) (firstSeq, lastSeq uint64, ok bool) {
	rest, found := strings.CutPrefix(key, RecordsPrefix(deviceID))
	if !found {
		return 0, 0, false
	}
	// yyyy/mm/dd/<first>-<last>.ndjson.gz
	name := rest[strings.LastIndexByte(rest, '/')+1:]
	name, found = strings.CutSuffix(name, ".ndjson.gz")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(name, "-")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseUint(a, 10, 64)
	last, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil || first == 0 || first > last {
		return 0, 0, false
	}
	return first, last, true
}

// RecordsDatePrefix is where the device's batches dated t start, in key order.
func RecordsDatePrefix(deviceID string, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%s%04d/%02d/%02d/", RecordsPrefix(deviceID), t.Year(), t.Month(), t.Day())
}

// RecordsPrefix is the prefix of all of a device's batch objects.
func RecordsPrefix(deviceID string) string { return "devices/" + deviceID + "/records/" }

// InventoryPrefix is where a device's inventory records are kept, one object each (InventoryKey). Keys sort by
// the record's time: the device's newest inventory is the last key under the prefix. Nothing is overwritten, so
// two clusters taking a device's records during a failover can never leave an older inventory in place of a
// newer one.
func InventoryPrefix(deviceID string) string { return "devices/" + deviceID + "/inventory/" }

// InventoryKey is where one inventory record is kept: named by its time (by the PC's clock, clamped like batch
// keys, zero-padded nanoseconds) and its seq, which together identify it forever.
func InventoryKey(deviceID string, at time.Time, seq uint64) string {
	return fmt.Sprintf("%s%020d-%020d.json", InventoryPrefix(deviceID), ClampKeyTime(at).UnixNano(), seq)
}

// QuestionKey is one question.
func QuestionKey(deviceID, questionID string) string {
	return "questions/" + deviceID + "/" + questionID + ".json"
}

// QuestionsPrefix is the prefix of a device's questions.
func QuestionsPrefix(deviceID string) string { return "questions/" + deviceID + "/" }

// AnswerKey is one answer to a question. Question IDs are chosen by agents, so answers sit under the asking
// device too: a device that reuses another device's question ID must not read that device's answers.
func AnswerKey(deviceID, questionID, answerID string) string {
	return AnswersPrefix(deviceID, questionID) + answerID + ".json"
}

// DeviceAnswersPrefix is the prefix of all answers to a device's questions.
func DeviceAnswersPrefix(deviceID string) string { return "answers/" + deviceID + "/" }

// AnswersPrefix is the prefix of the answers to one of a device's questions.
func AnswersPrefix(deviceID, questionID string) string {
	return DeviceAnswersPrefix(deviceID) + questionID + "/"
}

// LedgerKey is the device's seq ledger: the seqs the ingest service has acknowledged for it (internal/ingest).
// Ledgers live under a prefix of their own because they are rewritten with every batch: the bucket does not
// version that prefix (internal/objectstore), so a ledger is overwritten in place and not replicated.
func LedgerKey(deviceID string) string { return LedgerPrefix + deviceID + ".json" }

// LedgerPrefix is the prefix of all seq ledgers.
const LedgerPrefix = "ledger/"

// IndexPrefix holds the dashboard's snapshot of its index (internal/fleetindex), rewritten every few minutes:
// like the ledgers, it is not versioned, so not replicated — each copy has the one its own cluster's dashboards
// write, and it is derived from the replicated objects alone.
const IndexPrefix = "_index/"

// SwitchPrefix holds the data plane's records of moving its writes to another copy of the storage (StorageSwitch):
// what the operator measures a failover's RTO from.
const SwitchPrefix = "_failover/"

// SwitchKey is where a server records one switch: named by when writes resumed, so that keys sort by time and
// two servers never share one.
func SwitchKey(server string, resumed time.Time) string {
	return fmt.Sprintf("%s%020d-%s.json", SwitchPrefix, resumed.UTC().UnixNano(), server)
}

// StorageSwitch is a data-plane server moving its writes from its preferred storage endpoint to another: from
// FailedAt (the first failed write there since its last good one) no write could be taken there, and at
// ResumedAt another endpoint took one.
type StorageSwitch struct {
	Server    string    `json:"server"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	FailedAt  time.Time `json:"failedAt"`
	ResumedAt time.Time `json:"resumedAt"`
}
