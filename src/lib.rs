//! polaris-plugin (work in progress)
