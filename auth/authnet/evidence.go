package authnet

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// EvidenceFile is where a LAG keeps the evidence of every session it
// admitted (auth.Evidence), one JSON object a line, appended. The CA traces
// a session from its line (gridveil ca trace); the LAG itself cannot, since
// the identity is encrypted to the CA (pseudonyms) or hidden behind a link
// tag only the CA's secret resolves (LSAG).
const EvidenceFile = "evidence.jsonl"

// EvidenceRecord is one line of an evidence file. Evidence (the canonical
// encoding, hex) is what counts; the other fields repeat parts of it for
// people and grep.
type EvidenceRecord struct {
	Time     time.Time `json:"time"`
	LAG      string    `json:"lag"`
	Session  string    `json:"session"`                // the binding, hex
	Scheme   string    `json:"scheme"`                 // pseudonym or lsag
	Resumed  string    `json:"resumed_from,omitempty"` // origin binding, hex
	Evidence string    `json:"evidence"`
}

func recordOf(e *auth.Evidence) EvidenceRecord {
	r := EvidenceRecord{Time: time.Unix(e.Time, 0).UTC(), LAG: e.LAGID, Session: hex.EncodeToString(e.Binding[:]),
		Scheme: e.Scheme.String(), Evidence: hex.EncodeToString(e.Marshal())}
	if e.Resumed {
		r.Resumed = hex.EncodeToString(e.Origin[:])
	}
	return r
}

// EvidenceLog appends evidence records to a LAG's evidence file. Each
// record is one write, so a crash loses at most the records not yet
// written and never interleaves two; the file is synced every SyncEvery
// and on Close. Safe for concurrent use.
type EvidenceLog struct {
	mu     sync.Mutex
	f      *os.File
	dirty  bool
	closed bool
	stop   chan struct{}
	done   chan struct{}
	// Torn is the size of the torn last line (a write cut short by a
	// crash or power loss) that opening the log found and moved to
	// EvidenceFile+".torn"; 0 if the file ended with a whole line.
	Torn int64
}

// TornSuffix names the file beside the evidence file that keeps torn tails.
const TornSuffix = ".torn"

// SyncEvery is how often an evidence log reaches the disk.
const SyncEvery = time.Second

// OpenEvidenceLog opens (or creates, mode 0600) the store's evidence file
// for appending.
//
// A torn last line (the file does not end with a newline) is cut off
// before anything is appended, so that a new record is never fused onto
// it (which would make a line in the middle of the file unreadable, and
// ReadEvidence refuse the file); the torn bytes are appended to the file
// named EvidenceFile+TornSuffix first, so nothing is lost, and Torn says
// how many there were.
func OpenEvidenceLog(store *Store) (*EvidenceLog, error) {
	path := store.Path(EvidenceFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("evidence file: %w", err)
	}
	torn, err := cutTornTail(f, path+TornSuffix)
	if err == nil {
		_, err = f.Seek(0, io.SeekEnd)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("evidence file %s: %w", path, err)
	}
	l := &EvidenceLog{f: f, stop: make(chan struct{}), done: make(chan struct{}), Torn: torn}
	go l.syncer()
	return l, nil
}

// cutTornTail moves what follows the last newline of f to the file torn
// (synced first) and truncates f after that newline. It returns the size
// moved.
func cutTornTail(f *os.File, torn string) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	end := size // the offset just after the last newline
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end == size {
		return 0, nil
	}
	tail := make([]byte, size-end)
	if _, err := f.ReadAt(tail, end); err != nil {
		return 0, err
	}
	tf, err := os.OpenFile(torn, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	// One torn tail a line in the side file, whatever it holds.
	_, err = tf.Write(append(tail, '\n'))
	if err == nil {
		err = tf.Sync()
	}
	if cerr := tf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("keeping the torn tail in %s: %w", torn, err)
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	return size - end, f.Sync()
}

func (l *EvidenceLog) syncer() {
	defer close(l.done)
	t := time.NewTicker(SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			if l.dirty && !l.closed {
				_ = l.f.Sync()
				l.dirty = false
			}
			l.mu.Unlock()
		}
	}
}

// Append writes one record.
func (l *EvidenceLog) Append(e *auth.Evidence) error {
	b, err := json.Marshal(recordOf(e))
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("evidence log closed")
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("evidence file: %w", err)
	}
	l.dirty = true
	return nil
}

// Close syncs and closes the file.
func (l *EvidenceLog) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.stop)
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.mu.Unlock()
	<-l.done
	return err
}

// ReadEvidence reads an evidence file. A last line without its newline (a
// write cut short by a crash) is skipped; any other bad line is an error
// that names it.
func ReadEvidence(path string) ([]*auth.Evidence, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading evidence: %w", err)
	}
	var out []*auth.Evidence
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	complete := bytes.Count(data, []byte{'\n'})
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if line > complete {
			break // torn last line
		}
		if text == "" {
			continue
		}
		e, err := parseRecord(text)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func parseRecord(text string) (*auth.Evidence, error) {
	var r EvidenceRecord
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("not an evidence record: %w", err)
	}
	b, err := hex.DecodeString(r.Evidence)
	if err != nil {
		return nil, fmt.Errorf("evidence field: %w", err)
	}
	e, err := auth.ParseEvidence(b)
	if err != nil {
		return nil, err
	}
	if r.Session != hex.EncodeToString(e.Binding[:]) || r.LAG != e.LAGID {
		return nil, errors.New("the session or LAG field disagrees with the evidence")
	}
	return e, nil
}
