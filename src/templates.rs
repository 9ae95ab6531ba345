//! Tera templates, embedded from `templates/`, overridable from a directory. (Being written.)
use std::path::Path;

pub struct Templates {}

impl Templates {
    pub fn load(_override_dir: Option<&Path>) -> anyhow::Result<Templates> {
        todo!()
    }
}
