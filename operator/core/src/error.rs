//! The crate's one error type. Each variant is named after the step that refused the input,
//! and its message says what was wrong in words a user can act on.

/// Why barge-core refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An index-range list such as `"0-41,43-99"` could not be parsed.
    /// `item` is the offending element (or the whole input when it is not a list problem).
    #[error("{item:?}: {problem}")]
    IndexSet { item: String, problem: String },

    /// An `evaluateOnExit` or `jobStateTimeLimitActions` pattern is not an AWS Batch glob.
    #[error("pattern {pattern:?}: {problem}")]
    Glob { pattern: String, problem: String },

    /// A `retryStrategy` is out of the ranges AWS Batch accepts.
    #[error("retryStrategy: {0}")]
    RetryStrategy(String),

    /// A `dependsOn` list is not valid for this job (e.g. SEQUENTIAL on a job that is not an array).
    #[error("dependsOn: {0}")]
    Dependency(String),

    /// An `arrayProperties.size` or `spec.terminate.arrayIndices` is out of range.
    #[error("arrayProperties: {0}")]
    Array(String),

    /// An `instanceTypes` entry names nothing in the catalog.
    #[error("instanceTypes: {0}")]
    InstanceTypes(String),

    /// A Kubernetes quantity or AWS resource value could not be read.
    #[error("quantity {quantity:?}: {problem}")]
    Quantity { quantity: String, problem: String },

    /// A node pool cannot be planned from the inputs given.
    #[error("node pool: {0}")]
    PoolPlan(String),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
