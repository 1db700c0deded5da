// Package wire is the client protocol of floe (the Walrus protocol and
// floe's additions), both sides of it: the frame codec, the request
// grammar the node parses (ParseRequest), and the replies the node builds
// and clients decode. The node's server (package node) and the Go client
// (package client) both import it; it imports nothing of floe but
// topicname, so neither side depends on the other.
//
// # Frames
//
// Every request and every reply is one frame; all integers are
// little-endian:
//
//	+-------------+---------------------+
//	| length  u32 | body (length bytes) |
//	+-------------+---------------------+
//
// A request frame is 1 to MaxRequest bytes, a reply 1 to MaxReply. A
// frame of length 0 or over the limit has its body skipped, so the stream
// stays in step, and is answered "ERR empty frame" or "ERR frame too large: ..."
// (ErrEmptyFrame, ErrFrameTooLarge).
//
// # Requests
//
// A request is UTF-8 text; trailing whitespace is trimmed, words are split
// on single spaces, and a PUT or PUTOFF payload is everything after
// "PUT <topic> ". Topic names follow topicname.Validate.
//
//	REGISTER <topic>
//	PUT <topic> <payload>
//	PUTOFF <topic> <payload>
//	GET <topic> [max]                      max 1 to MaxReadMax: floe's batch form
//	STATE <topic>
//	METRICS
//	READ <topic> <offset> [max]            max 1 to MaxReadMax, default DefaultReadMax
//	TAIL <topic> <offset> [max] [wait_ms]  wait_ms 0 to MaxTailWaitMS, default 1000
//	AUTH <token>                           floe's: authenticates the connection
//
// AUTH is answered "OK" or "ERR unauthorized: <reason>" (ErrUnauthorized); a node
// with a token file answers every other request of a connection that has not
// authenticated "ERR unauthorized: no token". A node without one answers AUTH "OK"
// and checks nothing, so a client may always send it first.
//
// PUTBATCH is the one binary-safe request (EncodeBatch): a text line
// "PUTBATCH <topic>\n", then one or more records of [u32 length][payload],
// each payload 1 byte or more.
//
// # Replies
//
// "OK", "OK <text>" (an offset, a payload), "EMPTY" (GET with no entry),
// JSON (STATE, METRICS), "ERR <reason>" (ErrorReply, ReplyError), or, for
// READ, TAIL and GET with a max, the binary-safe form of EncodeEntries:
//
//	"OK <count> <next>\n" then count records of [u64 offset][u32 length][payload]
//
// where next is the offset to read from next (for GET: the offset after the
// last entry it took). GET with a max takes up to max entries from the
// shared cursor in one advance, and answers "EMPTY" when there are none. A request that fails to
// parse changes nothing and leaves the connection usable.
package wire
