package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Envelope is a signed transaction on the wire: the body's exact bytes, the
// signer's Ed25519 public key, and its signature over "gridveil-tx" || body.
type Envelope struct {
	Body []byte `json:"body"`
	Pub  []byte `json:"pub"`
	Sig  []byte `json:"sig"`
}

// Body is what a transaction says. Chain binds it to one ledger and Nonce
// to one place in its signer's sequence, so that a captured transaction
// cannot be replayed here or on another chain.
type Body struct {
	Chain string `json:"chain"`
	Nonce uint64 `json:"nonce"`
	Type  string `json:"type"` // demand, margin, order, transfer

	Window int64  `json:"window,omitempty"` // delivery window index
	Wh     int64  `json:"wh,omitempty"`     // demand, margin
	Side   string `json:"side,omitempty"`   // order: buy or sell
	Price  int64  `json:"price,omitempty"`  // order: milli-currency per kWh
	To     string `json:"to,omitempty"`     // transfer: recipient account (hex public key)
	Amount int64  `json:"amount,omitempty"` // transfer: milli-currency

	// margin: each bus's voltage headroom (nano-pu^2) and congestion fee
	// (milli-currency per kWh) for the window.
	Slack      map[string]int64 `json:"slack,omitempty"`
	Congestion map[string]int64 `json:"congestion,omitempty"`

	// p2p: the contract both parties agreed, and the seller's signature
	// over it (the buyer signs the envelope).
	Contract   *Contract `json:"contract,omitempty"`
	CounterSig []byte    `json:"counter_sig,omitempty"`

	// delivery: metered Wh per station for the window, reported by the
	// grid company.
	Delivered map[string]int64 `json:"delivered,omitempty"`
}

// Contract is a bilateral P2P trade of charging rights (seed 003's P2P
// phase): it exists only when both parties have signed it.
type Contract struct {
	ID     string `json:"id"` // unique per window; a second use is a replay
	Window int64  `json:"window"`
	Buyer  string `json:"buyer"`  // hex public key
	Seller string `json:"seller"` // hex public key
	Wh     int64  `json:"wh"`
	Price  int64  `json:"price"` // milli-currency per kWh
}

const contractContext = "gridveil-contract"

// SignContract is the seller's signature over a contract.
func SignContract(c Contract, chain string, priv ed25519.PrivateKey) ([]byte, error) {
	data, err := json.Marshal(struct {
		Chain string   `json:"chain"`
		C     Contract `json:"contract"`
	}{chain, c})
	if err != nil {
		return nil, err
	}
	return ed25519.Sign(priv, append([]byte(contractContext), data...)), nil
}

// verifyContract checks the seller's signature.
func verifyContract(c *Contract, chain string, sig []byte) bool {
	pub, err := hexKey(c.Seller)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	data, _ := json.Marshal(struct {
		Chain string   `json:"chain"`
		C     Contract `json:"contract"`
	}{chain, *c})
	return ed25519.Verify(pub, append([]byte(contractContext), data...), sig)
}

func hexKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %q is not a hex Ed25519 public key", ErrMalformed, s)
	}
	return b, nil
}

const signContext = "gridveil-tx"

// Sign makes a signed envelope of b with priv.
func Sign(b Body, priv ed25519.PrivateKey) ([]byte, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	env := Envelope{Body: body, Pub: priv.Public().(ed25519.PublicKey), Sig: ed25519.Sign(priv, append([]byte(signContext), body...))}
	return json.Marshal(env)
}

// Reasons a transaction is rejected; each result code maps to one.
var (
	ErrMalformed = errors.New("malformed transaction")
	ErrSignature = errors.New("bad signature")
	ErrChain     = errors.New("wrong chain")
	ErrNonce     = errors.New("wrong nonce (replayed or out of order)")
	ErrAccount   = errors.New("unknown account")
	ErrRole      = errors.New("not allowed for this account's role")
	ErrPhase     = errors.New("not in the phase that allows it")
	ErrFunds     = errors.New("insufficient funds or rights")
	ErrValue     = errors.New("invalid value")
)

// codes are the ABCI result codes of the errors above (0 is success).
var codes = []error{nil, ErrMalformed, ErrSignature, ErrChain, ErrNonce, ErrAccount, ErrRole, ErrPhase, ErrFunds, ErrValue}

// Code returns the ABCI result code of err.
func Code(err error) uint32 {
	for i, e := range codes[1:] {
		if errors.Is(err, e) {
			return uint32(i + 1)
		}
	}
	if err != nil {
		return 1
	}
	return 0
}

// maxTxBytes bounds what Decode accepts.
const maxTxBytes = 4096

// Decode parses and authenticates a transaction: it returns the body and
// the signer's account key (hex) only if the signature verifies.
func Decode(tx []byte) (*Body, string, error) { return decode(tx, true) }

// decode is Decode, checking the signature only if verify: the
// application skips it for a transaction whose exact bytes it already
// verified (verdicts).
func decode(tx []byte, verify bool) (*Body, string, error) {
	if len(tx) > maxTxBytes {
		return nil, "", fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(tx), maxTxBytes)
	}
	var env Envelope
	if err := json.Unmarshal(tx, &env); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(env.Pub) != ed25519.PublicKeySize || len(env.Sig) != ed25519.SignatureSize {
		return nil, "", fmt.Errorf("%w: public key or signature has the wrong length", ErrMalformed)
	}
	if verify {
		sigChecks.Add(1)
	}
	if verify && !ed25519.Verify(env.Pub, append([]byte(signContext), env.Body...), env.Sig) {
		return nil, "", ErrSignature
	}
	var b Body
	if err := json.Unmarshal(env.Body, &b); err != nil {
		return nil, "", fmt.Errorf("%w: body: %v", ErrMalformed, err)
	}
	return &b, hex.EncodeToString(env.Pub), nil
}

// sigChecks counts envelope signature verifications, so that a test can
// tell that a node verifies each transaction once.
var sigChecks atomic.Int64

// verdicts remembers, by SHA-256 of a transaction's bytes, the ones whose
// envelope signature verified, so that a node verifies each signature once:
// in CheckTx (and not again in mempool rechecks or FinalizeBlock). A
// signature's validity depends on the bytes alone, never on the state, so
// the verdict cannot go stale. It is bounded: the oldest verdict is
// forgotten first, and a forgotten one only costs a verification again.
type verdicts struct {
	mu   sync.Mutex
	ok   map[[32]byte]struct{}
	ring [][32]byte // insertion order, for eviction
	next int
}

// verdictCap bounds the cache: a full mempool (CometBFT's default is 5,000
// transactions) several times over, 4 MiB at most.
const verdictCap = 1 << 16

func newVerdicts() *verdicts {
	return &verdicts{ok: make(map[[32]byte]struct{}), ring: make([][32]byte, 0, verdictCap)}
}

// decode is Decode with the cache: a hit skips the signature check, a
// verified miss is remembered.
func (v *verdicts) decode(tx []byte) (*Body, string, error) {
	if len(tx) > maxTxBytes {
		return decode(tx, true)
	}
	h := sha256.Sum256(tx)
	v.mu.Lock()
	_, ok := v.ok[h]
	v.mu.Unlock()
	if ok {
		return decode(tx, false)
	}
	b, signer, err := decode(tx, true)
	if err == nil {
		v.mu.Lock()
		v.add(h)
		v.mu.Unlock()
	}
	return b, signer, err
}

func (v *verdicts) add(h [32]byte) {
	if len(v.ring) < verdictCap {
		v.ring = append(v.ring, h)
	} else {
		delete(v.ok, v.ring[v.next])
		v.ring[v.next] = h
		v.next = (v.next + 1) % verdictCap
	}
	v.ok[h] = struct{}{}
}
