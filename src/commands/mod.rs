//! One module per command: each turns its flags into steps of [`crate::workflow`] and prints
//! the outcome. No command calls another.

pub mod backup;
pub mod cache;
pub mod destroy;
pub mod doctor;
pub mod drill;
pub mod halt;
pub mod health;
pub mod image;
pub mod kairos;
pub mod kubeconfig;
pub mod plan;
pub mod plugin;
pub mod render;
pub mod restore;
pub mod ssh;
pub mod status;
pub mod up;
pub mod validate;
