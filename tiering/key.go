package tiering

import (
	"fmt"
	"strconv"
	"strings"
)

// ObjectKey is the key of a sealed segment's object, relative to the bucket prefix.
func ObjectKey(topic string, segment, term uint64) string {
	return fmt.Sprintf("topics/%s/%020d-%020d.seg", topic, segment, term)
}

// ParseObjectKey is the inverse of ObjectKey.
func ParseObjectKey(key string) (topic string, segment, term uint64, ok bool) {
	rest, found := strings.CutPrefix(key, "topics/")
	if !found {
		return "", 0, 0, false
	}
	topic, name, found := strings.Cut(rest, "/")
	if !found || topic == "" {
		return "", 0, 0, false
	}
	name, found = strings.CutSuffix(name, ".seg")
	if !found || len(name) != 41 || name[20] != '-' {
		return "", 0, 0, false
	}
	seg, err1 := strconv.ParseUint(name[:20], 10, 64)
	trm, err2 := strconv.ParseUint(name[21:], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return topic, seg, trm, true
}
