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

	dir string   // where state.db lives; "" keeps state in memory only
	db  *stateDB // nil in memory

	mu sync.Mutex
	// state is the state after the last block: FinalizeBlock applies a
	// block to it in place, Commit writes what the block changed. A block
	// reaches FinalizeBlock only once consensus decided it (ABCI 2.0), so
	// nothing ever rolls one back; a crash between the two replays the
	// block from the persisted state.
	state *State
	check *State // mempool's view
	hash  []byte // app hash of the last committed state
	// height is the last committed height, what Info reports.
	height int64

	finalized            bool  // a block was finalized and not yet committed
	blockTime, checkTime int64 // Unix ms of the pending and the committed block

	verified *verdicts // signatures already verified on this node
}

// checkCommitments makes every Commit recompute the app hash from the
// whole state and fail if the incremental one differs: the package's tests
// switch it on, so that every test that drives the App (days, crashes,
// validator sets) checks that no state change escapes the commitment.
var checkCommitments = false

// NewApp opens the application whose state lives in dir (created if
// missing). A fresh directory waits for InitChain. Close releases it.
func NewApp(dir string) (*App, error) {
	a := &App{dir: dir, verified: newVerdicts()}
	if dir == "" {
		return a, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	db, err := openStore(dir)
	if err != nil {
		return nil, err
	}
	s, hash, err := db.load()
	if err == nil && s == nil {
		s, hash, err = importLegacy(dir, db)
	}
	if err != nil {
		db.close()
		return nil, err
	}
	a.db = db
	if s == nil {
		return a, nil
	}
	// The stored hash is what this node told CometBFT; contents that hash
	// differently were altered or damaged after the commit, and serving
	// them would fork this node from the chain (issue 13).
	if got := s.Hash(); !bytes.Equal(got, hash) {
		db.close()
		return nil, fmt.Errorf("ledger: the state in %s does not match its recorded hash (recorded %x, contents hash to %x): it was altered or damaged after it was committed; restore app/ from a backup or from another validator, or remove %s to replay the chain from genesis", db.path, hash, got, db.path)
	}
	s.commit.takeChanges() // all of it is on disk already
	a.state, a.hash, a.height = s, hash, s.Height
	a.check = clone(s)
	return a, nil
}

// importLegacy moves an earlier version's state.json into state.db (once;
// the file is removed after the synced write). Its hash is checked first.
func importLegacy(dir string, db *stateDB) (*State, []byte, error) {
	s, hash, err := readLegacy(dir)
	if err != nil || s == nil {
		return nil, nil, err
	}
	if got := s.Hash(); !bytes.Equal(got, hash) {
		return nil, nil, fmt.Errorf("ledger: state.json in %s does not match its recorded hash (recorded %x, contents hash to %x): the file was altered or damaged after it was committed; restore it from a backup or from another validator, or remove it to replay the chain from genesis", dir, hash, got)
	}
	if err := db.write(s.commit.takeChanges(), hash); err != nil {
		return nil, nil, err
	}
	if err := os.Remove(filepath.Join(dir, legacyFile)); err != nil {
		return nil, nil, fmt.Errorf("ledger: removing the imported %s: %w", legacyFile, err)
	}
	return s, hash, nil
}

// Close releases the state database; the App must not be used after.
func (a *App) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.db == nil {
		return nil
	}
	err := a.db.close()
	a.db = nil
	return err
}

func clone(s *State) *State { return s.Clone() }

// State returns a copy of the state after the last block.
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
		r.LastBlockHeight, r.LastBlockAppHash = a.height, a.hash
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
	a.state, a.check, a.hash, a.height = s, clone(s), s.Hash(), 0
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
	if a.finalized {
		return nil, fmt.Errorf("ledger: FinalizeBlock at height %d before the previous block was committed", req.Height)
	}
	// In place: the block is decided (see App.state). Deliver checks a
	// transaction wholly before changing anything, so a rejected one
	// leaves no trace.
	s := a.state
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
	a.finalized = true
	a.blockTime = now
	resp := &abci.ResponseFinalizeBlock{TxResults: res, AppHash: s.Hash()}
	for _, v := range s.Updates() {
		resp.ValidatorUpdates = append(resp.ValidatorUpdates, abci.Ed25519ValidatorUpdate(v.PubKey, v.Power))
	}
	return resp, nil
}

// Commit writes what the block changed to disk (one synced bbolt
// transaction, store.go) before CometBFT records the block as committed,
// and resets the mempool's view to the new state.
func (a *App) Commit(context.Context, *abci.RequestCommit) (*abci.ResponseCommit, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.finalized {
		return &abci.ResponseCommit{}, nil
	}
	hash := a.state.Hash() // computed by FinalizeBlock: nothing left to refresh
	if checkCommitments {
		if full := a.state.fullHash(); !bytes.Equal(full, hash) {
			return nil, fmt.Errorf("ledger: height %d: incremental app hash %x, recomputed from the whole state %x: a state change was not recorded in the commitment", a.state.Height, hash, full)
		}
	}
	changed := a.state.commit.takeChanges()
	if a.db != nil {
		if err := a.db.write(changed, hash); err != nil {
			return nil, err
		}
	}
	a.hash, a.height, a.finalized = hash, a.state.Height, false
	a.check, a.checkTime = clone(a.state), a.blockTime
	return &abci.ResponseCommit{}, nil
}

// Query answers /account (data: hex key), /window (data: window index)
// and /state (the whole state), from the state after the last block, whose
// height the answer carries.
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
