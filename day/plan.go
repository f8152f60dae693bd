package day

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// Plan is what every party of a day derives from the scenario, the seed
// and the vehicle count: the same inputs give every process the same plan.
type Plan struct {
	Scenario string
	Problem  *charging.Problem
	Meta     *scenario.Meta
}

// Load builds the plan of a day: scenario is a built-in name, a scenario
// YAML file or an instance.json; seed, when seedSet, replaces the
// scenario's own seed; evs > 0 tiles feeders for that many vehicles.
func Load(name string, seed uint64, seedSet bool, evs int) (*Plan, error) {
	if evs < 0 {
		return nil, fmt.Errorf("--evs %d: give a positive number of EVs", evs)
	}
	if strings.HasSuffix(name, ".json") {
		if seedSet || evs > 0 {
			return nil, errors.New("--seed and --evs do not apply to an instance.json, which fixes every vehicle; give a scenario instead")
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("reading instance: %w", err)
		}
		defer f.Close()
		p, m, err := scenario.ReadInstance(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &Plan{Scenario: name, Problem: p, Meta: m}, nil
	}
	spec, err := scenario.Load(name)
	if err != nil {
		return nil, err
	}
	s := spec.Seed
	if seedSet {
		s = seed
	}
	p, m, err := scenario.Build(spec, s, evs)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	return &Plan{Scenario: name, Problem: p, Meta: m}, nil
}

// Pseudonym is the name vehicle i reports under on its bus. It is derived
// from the vehicle's position in the plan, not from its identity.
// TODO(issue 14): the session pseudonym of the vehicle's C6 plug-in
// authentication, which the LAG hands the SO when the vehicle joins.
func (pl *Plan) Pseudonym(i int) string { return fmt.Sprintf("ps-%d", i) }

// Index is the plan index of the vehicle with pseudonym id, or -1.
func (pl *Plan) Index(id string) int {
	var i int
	if _, err := fmt.Sscanf(id, "ps-%d", &i); err != nil || i < 0 || i >= len(pl.Problem.EVs) || pl.Pseudonym(i) != id {
		return -1
	}
	return i
}

// SO is what the system operator knows: its operator configuration and,
// per bus, the pseudonyms that joined it.
func (pl *Plan) SO(opt charging.Options) (charging.OperatorConfig, [][]string) {
	cfg, busEVs := pl.Problem.OperatorConfig(opt)
	members := make([][]string, len(busEVs))
	for g, evs := range busEVs {
		for _, i := range evs {
			members[g] = append(members[g], pl.Pseudonym(i))
		}
	}
	return cfg, members
}

// Host returns the vehicles host k of n runs (every n-th vehicle from the
// k-th), their pseudonyms and their indices in the plan.
func (pl *Plan) Host(k, n int) ([]charging.EV, []string, []int, error) {
	if n <= 0 || k < 0 || k >= n {
		return nil, nil, nil, fmt.Errorf("host %d of %d: give 0 <= --host < --hosts", k, n)
	}
	var evs []charging.EV
	var ids []string
	var which []int
	for i := k; i < len(pl.Problem.EVs); i += n {
		evs = append(evs, pl.Problem.EVs[i])
		ids = append(ids, pl.Pseudonym(i))
		which = append(which, i)
	}
	return evs, ids, which, nil
}
