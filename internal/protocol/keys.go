package protocol

import (
	"fmt"
	"time"
)

// Object keys in a tenant's bucket. Every object has one deterministic key, so a retried write overwrites the
// same object and two-way replication never conflicts.

// DeviceKey is a device's enrollment record.
func DeviceKey(deviceID string) string { return "devices/" + deviceID + "/device.json" }

// BatchKey is where a batch's records are stored: dated by the first record's own time, so that a retry maps
// to the same key whenever it arrives, and named by its seq range, zero-padded so that keys sort by seq.
func BatchKey(deviceID string, first time.Time, firstSeq, lastSeq uint64) string {
	t := first.UTC()
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

// AnswerKey is one answer to a question.
func AnswerKey(questionID, answerID string) string {
	return "answers/" + questionID + "/" + answerID + ".json"
}

// AnswersPrefix is the prefix of a question's answers.
func AnswersPrefix(questionID string) string { return "answers/" + questionID + "/" }
