package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// keyOrder records, per JSON pointer of an object in a document, the order
// of its keys, so that rewriting data.json keeps the operator's layout.
type keyOrder map[string][]string

// readOrder returns the key order of every object in the JSON text b.
func readOrder(b []byte) (keyOrder, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	o := keyOrder{}
	if err := o.value(dec, "", 0); err != nil {
		return nil, err
	}
	return o, nil
}

func (o keyOrder) value(dec *json.Decoder, path string, depth int) error {
	if depth > 10000 {
		return errors.New("catalog: JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		var keys []string
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			keys = append(keys, k)
			if err := o.value(dec, path+"/"+k, depth+1); err != nil {
				return err
			}
		}
		o[path] = keys
	case '[':
		for i := 0; dec.More(); i++ {
			if err := o.value(dec, path+"/"+strconv.Itoa(i), depth+1); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// encodeOrdered writes v as indented JSON, objects' keys in the order o
// recorded for their path, then any other keys sorted.
func encodeOrdered(v any, o keyOrder) ([]byte, error) {
	var compact bytes.Buffer
	if err := o.encode(&compact, v, ""); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func (o keyOrder) encode(buf *bytes.Buffer, v any, path string) error {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		seen := make(map[string]bool, len(v))
		for _, k := range o[path] {
			if _, ok := v[k]; ok && !seen[k] {
				keys = append(keys, k)
				seen[k] = true
			}
		}
		for _, k := range sortedKeys(v) {
			if !seen[k] {
				keys = append(keys, k)
			}
		}
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := scalar(buf, k); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := o.encode(buf, v[k], path+"/"+k); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := o.encode(buf, x, path+"/"+strconv.Itoa(i)); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = x
		}
		return o.encode(buf, m, path)
	default:
		return scalar(buf, v)
	}
	return nil
}

func scalar(buf *bytes.Buffer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	buf.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return nil
}
