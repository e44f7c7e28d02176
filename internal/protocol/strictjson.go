package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// StrictJSON checks that raw is JSON that every parser reads the same way, which encoding/json alone does not
// ensure: it lets the last of two equal names in an object win (so two parsers can disagree on a question's ID),
// replaces invalid UTF-8, and reads 1e999 as an error into a float but as text into a json.RawMessage. Refused,
// each with its own code:
//
//   - a name that occurs twice in one object (duplicate_name);
//   - invalid UTF-8 anywhere (invalid_utf8);
//   - a number whose value is not a finite float64, or an integer outside int64 and uint64 (number_out_of_range);
//   - anything that is not a single JSON value (malformed_json).
//
// Every error is a *RequestError with status 400.
func StrictJSON(raw []byte) error {
	if !utf8.Valid(raw) {
		return reject(http.StatusBadRequest, "invalid_utf8", "body is not valid UTF-8")
	}
	dec := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))
	for values := 0; ; {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			if values == 0 {
				return reject(http.StatusBadRequest, "malformed_json", "body is empty")
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, jsontext.ErrDuplicateName) {
				return reject(http.StatusBadRequest, "duplicate_name", "a name occurs twice in one object at %s", dec.StackPointer())
			}
			return reject(http.StatusBadRequest, "malformed_json", "%v", err)
		}
		if tok.Kind() == '0' {
			if err := checkNumber(tok.String()); err != nil {
				return reject(http.StatusBadRequest, "number_out_of_range", "%s: %v", dec.StackPointer(), err)
			}
		}
		if dec.StackDepth() == 0 {
			if values++; values > 1 {
				return reject(http.StatusBadRequest, "malformed_json", "more than one JSON value")
			}
		}
	}
}

// checkNumber accepts a JSON number literal whose value a float64 holds finitely and, for an integer literal,
// an int64 or a uint64 holds exactly.
func checkNumber(lit string) error {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("number %s is beyond the range of a 64-bit float", truncate(lit))
	}
	if bytes.ContainsAny([]byte(lit), ".eE") {
		return nil
	}
	if _, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return nil
	}
	if _, err := strconv.ParseUint(lit, 10, 64); err == nil {
		return nil
	}
	return fmt.Errorf("integer %s is beyond 64 bits", truncate(lit))
}
