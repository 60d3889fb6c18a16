package controller

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/store"
)

// modelEntry is a model the controller can learn for, decoded and
// validated.
type modelEntry struct {
	name     string
	manifest *model.Manifest
	accuracy *costmodel.AccuracyTable
	profiles map[string]*costmodel.Profile
}

// keyEntry is what validation needs of a key; it never changes after the
// key is made, so it is shared without a lock. The learner holds what
// changes.
type keyEntry struct {
	name, model, deviceClass, cloudClass, objectiveName string
	cm                                                  *costmodel.Model
	// maxBytes is the most bytes each arm can send: the packed tensor
	// uncompressed, its header, and slack for a compressor's framing.
	maxBytes []float64
	learner  *learner
	// objective is the objective in force, which prices each report as it
	// arrives; the learner sets it.
	objective atomic.Pointer[costmodel.Objective]
}

// registry holds the models and keys. It is safe for concurrent use.
type registry struct {
	mu     sync.RWMutex
	models map[string]*modelEntry
	keys   map[string]*keyEntry
}

func newRegistry() *registry {
	return &registry{models: map[string]*modelEntry{}, keys: map[string]*keyEntry{}}
}

func (r *registry) key(name string) *keyEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[name]
}

func (r *registry) model(name string) *modelEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.models[name]
}

// keyList returns every key, sorted by name.
func (r *registry) keyList() []*keyEntry {
	r.mu.RLock()
	out := make([]*keyEntry, 0, len(r.keys))
	for _, k := range r.keys {
		out = append(out, k)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (r *registry) addKey(k *keyEntry) {
	r.mu.Lock()
	r.keys[k.name] = k
	r.mu.Unlock()
}

func (r *registry) addModel(m *modelEntry) {
	r.mu.Lock()
	r.models[m.name] = m
	r.mu.Unlock()
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// checkName validates a model, class or objective name (they make up key
// names, so they may not contain "/").
func checkName(field, v string) error {
	if !nameRE.MatchString(v) {
		return badField(field, "%q is not a name (letters, digits, '.', '_', '-'; at most 100)", v)
	}
	return nil
}

// keyName is the name of the key of a model on a device class under a
// named objective.
func keyName(modelName, class, objective string) string {
	return modelName + "/" + class + "/" + objective
}

// decodeModel validates a stored model.
func decodeModel(sm *store.Model) (*modelEntry, error) {
	m, err := model.ReadManifest(bytes.NewReader(sm.Manifest))
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", sm.Name, err)
	}
	acc, err := costmodel.ReadAccuracyTable(bytes.NewReader(sm.Accuracy))
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", sm.Name, err)
	}
	if err := acc.Validate(m.K()); err != nil {
		return nil, fmt.Errorf("model %s: %w", sm.Name, err)
	}
	e := &modelEntry{name: m.Name, manifest: m, accuracy: acc, profiles: map[string]*costmodel.Profile{}}
	for class, raw := range sm.Profiles {
		p, err := costmodel.ReadProfile(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("model %s: profile %s: %w", sm.Name, class, err)
		}
		if err := p.Validate(m.K()); err != nil {
			return nil, fmt.Errorf("model %s: %w", sm.Name, err)
		}
		e.profiles[class] = p
	}
	return e, nil
}

// readModelDir reads a model folder: model.json, accuracy.json and every
// profiles/*.json.
func readModelDir(dir string) (*store.Model, error) {
	read := func(name string) (json.RawMessage, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		return c.Bytes(), nil
	}
	man, err := read("model.json")
	if err != nil {
		return nil, err
	}
	acc, err := read("accuracy.json")
	if err != nil {
		return nil, err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "profiles", "*.json"))
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no profiles/*.json", dir)
	}
	sm := &store.Model{Manifest: man, Accuracy: acc, Profiles: map[string]json.RawMessage{}, Source: dir, UpdatedAt: time.Now().UTC()}
	for _, f := range files {
		raw, err := read(filepath.Join("profiles", filepath.Base(f)))
		if err != nil {
			return nil, err
		}
		var p costmodel.Profile
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		sm.Profiles[p.DeviceClass] = raw
	}
	var m model.Manifest
	if err := json.Unmarshal(man, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	sm.Name = m.Name
	if _, err := decodeModel(sm); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return sm, nil
}

// cloudProfile picks the cloud profile of a model.
// checkCloudClass refuses, at start, a configured cloud class that the
// model has no cloud profile for: every key of the model would be refused
// at registration otherwise.
func (m *modelEntry) checkCloudClass(want string) error {
	if want == "" {
		return nil
	}
	if p := m.profiles[want]; p != nil && p.Role == costmodel.RoleCloud {
		return nil
	}
	var have []string
	for c, p := range m.profiles {
		if p.Role == costmodel.RoleCloud {
			have = append(have, c)
		}
	}
	sort.Strings(have)
	return fmt.Errorf("%w: cloud class %q: model %s has no such cloud profile (it has: %s)", ErrInvalid, want, m.name, strings.Join(have, ", "))
}

func (m *modelEntry) cloudProfile(want string) (*costmodel.Profile, error) {
	if want != "" {
		p := m.profiles[want]
		if p == nil || p.Role != costmodel.RoleCloud {
			return nil, badField("cloud_class", "model %s has no cloud profile %q", m.name, want)
		}
		return p, nil
	}
	var found []*costmodel.Profile
	for _, p := range m.profiles {
		if p.Role == costmodel.RoleCloud {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("%w: model %s has no cloud profile", ErrInvalid, m.name)
	}
	return nil, fmt.Errorf("%w: model %s has %d cloud profiles: configure the cloud class", ErrInvalid, m.name, len(found))
}

// deviceClasses lists the device classes a model has profiles for.
func (m *modelEntry) deviceClasses() []string {
	var out []string
	for c, p := range m.profiles {
		if p.Role == costmodel.RoleDevice {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// newKeyEntry builds the cost model of a key.
func newKeyEntry(rec *store.Key, m *modelEntry) (*keyEntry, error) {
	dev := m.profiles[rec.DeviceClass]
	if dev == nil || dev.Role != costmodel.RoleDevice {
		return nil, badField("device_class", "model %s has no device profile %q (it has %s)", m.name, rec.DeviceClass, strings.Join(m.deviceClasses(), ", "))
	}
	cloud := m.profiles[rec.CloudClass]
	if cloud == nil {
		return nil, badField("cloud_class", "model %s has no cloud profile %q", m.name, rec.CloudClass)
	}
	cm, err := costmodel.New(m.manifest, dev, cloud, m.accuracy)
	if err != nil {
		return nil, err
	}
	k := &keyEntry{name: rec.Key, model: rec.Model, deviceClass: rec.DeviceClass, cloudClass: rec.CloudClass, objectiveName: rec.ObjectiveName, cm: cm}
	k.maxBytes = make([]float64, len(cm.Arms()))
	for i, a := range cm.Arms() {
		if a.Split == m.manifest.K() {
			continue
		}
		raw := math.Ceil(float64(m.manifest.Elements(a.Split)) * float64(a.Bits) / 8)
		k.maxBytes[i] = raw*1.01 + costmodel.PackHeaderBytes + 1024
	}
	return k, nil
}
