package store

// Bucket names, declared once. Every bucket is at the top level; policies
// and audit keep one nested bucket per key.
var (
	// bucketMeta holds the store's identity and bookkeeping: metaMagic,
	// metaSchema, metaCreated, metaReplayFrom.
	bucketMeta = []byte("meta")
	// bucketExecutors: executor id -> Executor (JSON).
	bucketExecutors = []byte("executors")
	// bucketModels: model name -> Model (JSON: manifest, accuracy table,
	// profiles, as the controller gave them).
	bucketModels = []byte("models")
	// bucketKeys: key -> Key (JSON: model, device class, objective).
	bucketKeys = []byte("keys")
	// bucketState: key -> State (bandit state and the last trace applied).
	bucketState = []byte("state")
	// bucketPolicies: key -> nested bucket: version (8 bytes, big-endian)
	// -> Policy.
	bucketPolicies = []byte("policies")
	// bucketPins: key -> Pin (JSON).
	bucketPins = []byte("pins")
	// bucketAudit: sequence (8 bytes, big-endian) -> Event (JSON).
	bucketAudit = []byte("audit")
	// bucketTraces: sequence of a block's first trace (8 bytes,
	// big-endian) -> a block of consecutive traces (binary, see
	// traces.go), one block per batch of reports. Append-only; retention
	// deletes whole blocks from the front.
	bucketTraces = []byte("traces")
	// bucketDedup: executor id -> Window (binary, see dedup.go).
	bucketDedup = []byte("dedup")
	// bucketCounters: executor id -> reports applied (8 bytes,
	// big-endian), written with its window in the transaction that
	// appends the reports (schema 2).
	bucketCounters = []byte("counters")
)

// allBuckets is every top-level bucket of the current schema.
var allBuckets = [][]byte{bucketMeta, bucketExecutors, bucketModels, bucketKeys, bucketState, bucketPolicies, bucketPins, bucketAudit, bucketTraces, bucketDedup, bucketCounters}

// Keys of bucketMeta.
var (
	metaMagic      = []byte("magic")
	metaSchema     = []byte("schema")
	metaCreated    = []byte("created")
	metaReplayFrom = []byte("replay_from")
)

// magic identifies a dyno store.
const magic = "dyno-controller-store"
