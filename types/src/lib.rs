//! Types the API server and the operator share: one definition, spelled the same way in the
//! server's environment and in the `JeexBackend` resource.
//!
//! The `schema` feature derives `schemars::JsonSchema` for the operator's CRD; the server
//! builds without it.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The most spans an API pod's export queue may hold (`OTEL_BSP_MAX_QUEUE_SIZE`, the resource's
/// `telemetry.spanQueue`): the queue's room is reserved when the process starts, about 0.36 KiB a
/// span (measured: 46 MiB at this limit).
pub const MAX_SPAN_QUEUE: usize = 131_072;

/// Similarity measures Qdrant offers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum VectorDistance {
    /// Cosine similarity (higher is closer).
    Cosine,
    /// Dot product (higher is closer).
    Dot,
    /// Euclidean distance (lower is closer).
    Euclid,
    /// Manhattan distance (lower is closer).
    Manhattan,
}

impl VectorDistance {
    /// The spelling of `JEEX_VECTOR_DISTANCE` and of the resource's `vectors.distance`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Dot => "dot",
            Self::Euclid => "euclid",
            Self::Manhattan => "manhattan",
        }
    }
}

impl fmt::Display for VectorDistance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads `JEEX_VECTOR_DISTANCE`: any case, and `euclidean` for `euclid`.
impl FromStr for VectorDistance {
    type Err = UnknownVectorDistance;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" => Ok(Self::Cosine),
            "dot" => Ok(Self::Dot),
            "euclid" | "euclidean" => Ok(Self::Euclid),
            "manhattan" => Ok(Self::Manhattan),
            _ => Err(UnknownVectorDistance(s.to_owned())),
        }
    }
}

/// A value that names no [`VectorDistance`]; displays as one line listing the valid ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVectorDistance(pub String);

impl fmt::Display for UnknownVectorDistance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown distance {:?}; use cosine, dot, euclid or manhattan", self.0)
    }
}

impl std::error::Error for UnknownVectorDistance {}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [VectorDistance; 4] = [VectorDistance::Cosine, VectorDistance::Dot, VectorDistance::Euclid, VectorDistance::Manhattan];

    #[test]
    fn every_spelling_reads_back() {
        for d in ALL {
            assert_eq!(d.as_str().parse(), Ok(d));
            assert_eq!(d.to_string(), d.as_str());
            assert_eq!(d.as_str().to_ascii_uppercase().parse(), Ok(d));
        }
        assert_eq!("euclidean".parse(), Ok(VectorDistance::Euclid));
    }

    #[test]
    fn serde_spells_it_as_the_environment_does() {
        for d in ALL {
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("{:?}", d.as_str()));
            assert_eq!(serde_json::from_str::<VectorDistance>(&format!("{:?}", d.as_str())).unwrap(), d);
        }
        // The resource is strict where the environment is lenient.
        assert!(serde_json::from_str::<VectorDistance>(r#""Cosine""#).is_err());
    }

    #[test]
    fn an_unknown_name_is_one_line_listing_the_valid_ones() {
        let e = "hamming".parse::<VectorDistance>().unwrap_err();
        assert_eq!(e.to_string(), r#"unknown distance "hamming"; use cosine, dot, euclid or manhattan"#);
    }
}
