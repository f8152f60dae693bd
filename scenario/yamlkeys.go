package scenario

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// unknownKeys finds the keys of a scenario file that Spec does not have and
// describes each by its place in the file (evs.colour, ev_list[2].pmax,
// line and column) with the keys valid there, because yaml.v3's own
// message names a Go type (scenario.EVSpec), which means nothing to the
// file's author. It returns nil if the document does not parse or has no
// unknown key.
func unknownKeys(data []byte) []string {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	var out []string
	walkKeys(doc.Content[0], reflect.TypeOf(Spec{}), "", &out)
	return out
}

func walkKeys(n *yaml.Node, t reflect.Type, path string, out *[]string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := map[string]reflect.Type{}
		var valid []string
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = t.Field(i).Type
			valid = append(valid, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			where := k.Value
			if path != "" {
				where = path + "." + k.Value
			}
			if !ok {
				in := "at the top level"
				if path != "" {
					in = "in " + path
				}
				*out = append(*out, fmt.Sprintf("unknown key %q (line %d, column %d): %s the keys are %s", where, k.Line, k.Column, in, strings.Join(valid, ", ")))
				continue
			}
			walkKeys(v, ft, where, out)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			walkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}
