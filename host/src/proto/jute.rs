//! Jute binary archive primitives. (skeleton)
