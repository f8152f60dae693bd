package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
)

// App is the CometBFT ABCI application around State: a thin shell that
// decodes transactions, drives the state machine with consensus time, and
// persists the state in Commit so that a restart replays only the blocks
// after the last commit.
type App struct {
	abci.BaseApplication

	dir string // where state.json lives; "" keeps state in memory only

	mu      sync.Mutex
	state   *State // committed state
	pending *State // state being built by the current block
	check   *State // mempool's view
	hash    []byte // app hash of the committed state

	blockTime, checkTime int64 // Unix ms of the pending and the committed block

	verified *verdicts // signatures already verified on this node
}

// checkCommitments makes every Commit recompute the app hash from the
// whole state and fail if the incremental one differs: the package's tests
// switch it on, so that every test that drives the App (days, crashes,
// validator sets) checks that no state change escapes the commitment.
var checkCommitments = false

// stateFile is the persisted state: the state, its hash, and how the hash
// was computed (commitVersion).
type stateFile struct {
	State   *State `json:"state"`
	Hash    []byte `json:"hash"`
	Version int    `json:"commitment_version"`
}

// NewApp opens the application whose state lives in dir (created if
// missing). A fresh directory waits for InitChain.
func NewApp(dir string) (*App, error) {
	a := &App{dir: dir, verified: newVerdicts()}
	if dir == "" {
		return a, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: reading state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil || f.State == nil {
		return nil, fmt.Errorf("ledger: state.json in %s is corrupt (%v); restore it from a backup or start a new chain", dir, err)
	}
	// The stored hash is what this node told CometBFT; contents that hash
	// differently were altered or damaged after the commit, and serving
	// them would fork this node from the chain (issue 13).
	if f.Version != commitVersion {
		return nil, fmt.Errorf("ledger: state.json in %s has state commitment version %d, this gridveil computes version %d: it was written by another gridveil version; run that version, or start a new chain (a new home)", dir, f.Version, commitVersion)
	}
	if got := f.State.fullHash(); !bytes.Equal(got, f.Hash) {
		return nil, fmt.Errorf("ledger: state.json in %s does not match its recorded hash (recorded %x, contents hash to %x): the file was altered or damaged after it was committed; restore it from a backup or from another validator's app/state.json, or remove it to replay the chain from genesis", dir, f.Hash, got)
	}
	a.state, a.hash = f.State, f.Hash
	a.check = clone(f.State)
	return a, nil
}

func clone(s *State) *State { return s.Clone() }

// State returns a copy of the committed state.
func (a *App) State() *State {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == nil {
		return nil
	}
	return clone(a.state)
}

// Info tells CometBFT how far the application got, so that it replays
// only the blocks after that.
func (a *App) Info(context.Context, *abci.RequestInfo) (*abci.ResponseInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := &abci.ResponseInfo{Data: "gridveil-ledger", Version: "1", AppVersion: 1}
	if a.state != nil {
		r.LastBlockHeight, r.LastBlockAppHash = a.state.Height, a.hash
	}
	return r, nil
}

// InitChain reads the genesis application state.
func (a *App) InitChain(_ context.Context, req *abci.RequestInitChain) (*abci.ResponseInitChain, error) {
	var g Genesis
	if err := json.Unmarshal(req.AppStateBytes, &g); err != nil {
		return nil, fmt.Errorf("ledger: genesis app_state: %w", err)
	}
	if g.Params.Chain == "" {
		g.Params.Chain = req.ChainId
	}
	s, err := NewState(g)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.state, a.check, a.hash = s, clone(s), s.Hash()
	resp := &abci.ResponseInitChain{AppHash: a.hash}
	// With station validators in the app's genesis, the app sets the
	// initial voting power (stake x reputation); their keys must be the
	// consensus keys of the nodes that run them, or the chain cannot
	// commit.
	for _, k := range sortedKeys(s.Validators) {
		v := s.Validators[k]
		resp.Validators = append(resp.Validators, abci.Ed25519ValidatorUpdate(v.PubKey, v.Power))
	}
	return resp, nil
}

// CheckTx admits a transaction to the mempool if it would apply now.
func (a *App) CheckTx(_ context.Context, req *abci.RequestCheckTx) (*abci.ResponseCheckTx, error) {
	b, signer, err := a.verified.decode(req.Tx)
	if err == nil {
		a.mu.Lock()
		if a.check == nil {
			err = fmt.Errorf("%w: the chain has not started", ErrPhase)
		} else {
			// The mempool judges phases by the wall clock (the next block's
			// time is near it); FinalizeBlock decides by the block's
			// consensus time, so a transaction admitted at a phase's edge
			// can still be rejected there, with its reason in the result.
			err = a.check.Deliver(b, signer, max(a.checkTime, time.Now().UnixMilli()))
		}
		a.mu.Unlock()
	}
	if err != nil {
		return &abci.ResponseCheckTx{Code: Code(err), Log: err.Error()}, nil
	}
	return &abci.ResponseCheckTx{Code: 0}, nil
}

// FinalizeBlock advances the windows to the block's time and applies its
// transactions in order; a rejected transaction changes nothing and says
// why in its result.
func (a *App) FinalizeBlock(_ context.Context, req *abci.RequestFinalizeBlock) (*abci.ResponseFinalizeBlock, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == nil {
		return nil, errors.New("ledger: FinalizeBlock before InitChain")
	}
	s := clone(a.state)
	now := req.Time.UnixMilli()
	s.BeginBlock(req.Height, now)
	res := make([]*abci.ExecTxResult, len(req.Txs))
	for i, tx := range req.Txs {
		b, signer, err := a.verified.decode(tx)
		if err == nil {
			err = s.Deliver(b, signer, now)
		}
		if err != nil {
			res[i] = &abci.ExecTxResult{Code: Code(err), Log: err.Error()}
			continue
		}
		res[i] = &abci.ExecTxResult{Code: 0, Events: []abci.Event{{Type: "gridveil." + b.Type, Attributes: []abci.EventAttribute{
			{Key: "signer", Value: signer, Index: true}, {Key: "window", Value: strconv.FormatInt(b.Window, 10), Index: true},
		}}}}
	}
	a.pending = s
	a.blockTime = now
	resp := &abci.ResponseFinalizeBlock{TxResults: res, AppHash: s.Hash()}
	for _, v := range s.Updates() {
		resp.ValidatorUpdates = append(resp.ValidatorUpdates, abci.Ed25519ValidatorUpdate(v.PubKey, v.Power))
	}
	return resp, nil
}

// Commit makes the block's state the committed one and writes it to disk
// (atomically: a temporary file renamed into place), before CometBFT
// records the block as committed.
func (a *App) Commit(context.Context, *abci.RequestCommit) (*abci.ResponseCommit, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		return &abci.ResponseCommit{}, nil
	}
	a.state, a.hash, a.pending = a.pending, a.pending.Hash(), nil
	if checkCommitments {
		if full := a.state.fullHash(); !bytes.Equal(full, a.hash) {
			return nil, fmt.Errorf("ledger: height %d: incremental app hash %x, recomputed from the whole state %x: a state change was not recorded in the commitment", a.state.Height, a.hash, full)
		}
	}
	a.check, a.checkTime = clone(a.state), a.blockTime
	if err := a.persist(); err != nil {
		return nil, err
	}
	return &abci.ResponseCommit{}, nil
}

func (a *App) persist() error {
	if a.dir == "" {
		return nil
	}
	data, err := json.Marshal(stateFile{State: a.state, Hash: a.hash, Version: commitVersion})
	if err != nil {
		return err
	}
	tmp := filepath.Join(a.dir, "state.json.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("ledger: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ledger: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return os.Rename(tmp, filepath.Join(a.dir, "state.json"))
}

// Query answers /account (data: hex key), /window (data: window index)
// and /state (the whole committed state).
func (a *App) Query(_ context.Context, req *abci.RequestQuery) (*abci.ResponseQuery, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == nil {
		return &abci.ResponseQuery{Code: Code(ErrPhase), Log: "the chain has not started"}, nil
	}
	var v any
	switch req.Path {
	case "/account":
		acc := a.state.Accounts[string(req.Data)]
		if acc == nil {
			return &abci.ResponseQuery{Code: Code(ErrAccount), Log: "no such account"}, nil
		}
		v = acc
	case "/window":
		w, err := strconv.ParseInt(string(req.Data), 10, 64)
		if err != nil {
			return &abci.ResponseQuery{Code: Code(ErrMalformed), Log: "window index must be an integer"}, nil
		}
		v = a.state.Windows[w]
	case "/state":
		v = a.state
	default:
		return &abci.ResponseQuery{Code: Code(ErrMalformed), Log: "paths: /account, /window, /state"}, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &abci.ResponseQuery{Code: 0, Value: data, Height: a.state.Height}, nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
