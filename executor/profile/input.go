package profile

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/model"
)

// ErrInput is wrapped by a calibration input file that cannot be read or
// does not fit the model.
var ErrInput = errors.New("calibrate: invalid input file")

// CheckDataFile checks, before any work starts, the raw input file that
// data "file:PATH" names: that it can be read, and that it holds a whole
// number of the model's inputs. Other data kinds, and a model whose
// manifest cannot be read (Calibrate reports that), pass.
func CheckDataFile(modelPath, data string) error {
	path, ok := strings.CutPrefix(data, "file:")
	if !ok {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: --data %s: %w", ErrInput, data, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%w: --data %s is a folder, not a file of float32 inputs", ErrInput, data)
	}
	m, err := model.LoadManifest(ort.ManifestPath(modelPath))
	if err != nil {
		return nil
	}
	size := m.Input.Elements
	if n := st.Size(); n == 0 || size <= 0 || n%(4*size) != 0 {
		return fmt.Errorf("%w: --data %s: %d bytes is not a whole number of %d-value float32 inputs (%d bytes each)", ErrInput, data, n, size, 4*size)
	}
	return nil
}
