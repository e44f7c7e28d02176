package protocol

import (
	"fmt"
	"time"
)

// Object keys in a tenant's bucket. Every object has one deterministic key, so a retried write overwrites the
// same object and two-way replication never conflicts.

// DeviceKey is a device's enrollment record.
func DeviceKey(deviceID string) string { return "devices/" + deviceID + "/device.json" }

// Batch keys are dated within these bounds.
var (
	earliestKeyTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	latestKeyTime   = time.Date(2199, 12, 31, 0, 0, 0, 0, time.UTC)
)

// BatchKey is where a batch's records are stored: dated by the first record's own time, so that a retry maps
// to the same key whenever it arrives, and named by its seq range, zero-padded so that keys sort by seq. A PC
// whose clock is far off (a dead CMOS battery says 1980) still gets its records stored, never refused: the
// date is clamped into 2000–2199, which keeps the key deterministic.
func BatchKey(deviceID string, first time.Time, firstSeq, lastSeq uint64) string {
	t := first.UTC()
	if t.Before(earliestKeyTime) {
		t = earliestKeyTime
	} else if t.After(latestKeyTime) {
		t = latestKeyTime
	}
	return fmt.Sprintf("devices/%s/records/%04d/%02d/%02d/%020d-%020d.ndjson.gz", deviceID, t.Year(), t.Month(), t.Day(), firstSeq, lastSeq)
}

// RecordsPrefix is the prefix of all of a device's batch objects.
func RecordsPrefix(deviceID string) string { return "devices/" + deviceID + "/records/" }

// InventoryKey is the device's newest inventory.
func InventoryKey(deviceID string) string { return "devices/" + deviceID + "/inventory/latest.json" }

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
// Ledgers live under a prefix of their own because they are rewritten with every batch: the bucket's lifecycle
// expires their old versions after a day instead of after the retention period.
func LedgerKey(deviceID string) string { return LedgerPrefix + deviceID + ".json" }

// LedgerPrefix is the prefix of all seq ledgers.
const LedgerPrefix = "ledger/"
