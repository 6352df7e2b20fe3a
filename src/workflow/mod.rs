//! The lab workflow: the steps commands compose, each a function over one [`Context`].
//!
//! `up` runs them in this order ([`up`]): [`resolve`] the inputs and topology → [`render`] the
//! lab's files → [`boot`] every machine at once → [`assign`] each its planned address →
//! [`apply`] k0sctl and write the kubeconfig → [`health`]. `destroy`, `halt`, `backup` and
//! `restore` are steps too; `restore` and `drill` compose `up`'s instead of calling a
//! command.
//!
//! [`Context`]: context::Context

pub mod apply;
pub mod assign;
pub mod backup;
pub mod boot;
pub mod context;
pub mod destroy;
pub mod doctor;
pub mod drill;
pub mod halt;
pub mod health;
pub mod image;
pub mod kairos;
pub mod machines;
pub mod preflight;
pub mod probe;
pub mod render;
pub mod resolve;
pub mod up;
