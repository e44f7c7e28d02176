package protocol

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStrictJSON(t *testing.T) {
	tests := map[string]struct {
		in   string
		code string // "" means accepted
	}{
		"object":                       {`{"a":1,"b":[1,2,{"c":"d"}],"e":null,"f":true}`, ""},
		"same name in sibling objects": {`{"a":{"x":1},"b":{"x":2}}`, ""},
		"same name at two depths":      {`{"x":{"x":1}}`, ""},
		"largest float64":              {`{"n":1.7976931348623157e308}`, ""},
		"tiny numbers underflow to 0":  {`{"n":1e-400}`, ""},
		"uint64 max":                   {`{"n":18446744073709551615}`, ""},
		"int64 min":                    {`{"n":-9223372036854775808}`, ""},
		"big integer in a float form":  {`{"n":18446744073709551616.0}`, ""},
		"duplicate name":               {`{"id":"a","text":"t","id":"b"}`, "duplicate_name"},
		"duplicate name, nested":       {`{"r":[{"seq":1,"seq":2}]}`, "duplicate_name"},
		"duplicate name by escape":     {`{"id":"a","\u0069d":"b"}`, "duplicate_name"},
		"overflowing float":            {`{"n":1e309}`, "number_out_of_range"},
		"overflowing negative":         {`{"n":-1e309}`, "number_out_of_range"},
		"integer beyond uint64":        {`{"n":18446744073709551616}`, "number_out_of_range"},
		"integer below int64":          {`{"n":-9223372036854775809}`, "number_out_of_range"},
		"NaN":                          {`{"n":NaN}`, "malformed_json"},
		"Infinity":                     {`{"n":Infinity}`, "malformed_json"},
		"invalid UTF-8":                {"{\"s\":\"\xc3\x28\"}", "invalid_utf8"},
		"two values":                   {`{}{}`, "malformed_json"},
		"truncated":                    {`{"a":`, "malformed_json"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := StrictJSON([]byte(tc.in))
			if tc.code == "" {
				require.NoError(t, err)
				return
			}
			var re *RequestError
			require.True(t, errors.As(err, &re), "got %v", err)
			require.Equal(t, http.StatusBadRequest, re.Status)
			require.Equal(t, tc.code, re.Code, re.Message)
		})
	}
}

func TestParseBatchKey(t *testing.T) {
	const dev = "0123456789abcdef0123456789abcdef"
	key := BatchKey(dev, time.Date(2026, 11, 30, 1, 2, 3, 0, time.UTC), 17, 42)
	first, last, ok := ParseBatchKey(dev, key)
	require.True(t, ok)
	require.Equal(t, [2]uint64{17, 42}, [2]uint64{first, last})
	require.Equal(t, "devices/"+dev+"/records/2026/11/30/", RecordsDatePrefix(dev, time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)))
	for _, bad := range []string{
		BatchKey("fedcba9876543210fedcba9876543210", time.Now(), 1, 2), // another device's
		RecordsPrefix(dev) + "2026/11/30/00000000000000000005-00000000000000000004.ndjson.gz",
		RecordsPrefix(dev) + "2026/11/30/00000000000000000000-00000000000000000004.ndjson.gz",
		RecordsPrefix(dev) + "2026/11/30/00000000000000000001-00000000000000000004.json",
		RecordsPrefix(dev) + "2026/11/30/garbage.ndjson.gz",
	} {
		_, _, ok := ParseBatchKey(dev, bad)
		require.False(t, ok, bad)
	}
}
