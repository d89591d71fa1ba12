//! autoscale
