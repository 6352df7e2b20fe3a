//! The lab workflow: the steps commands compose, each a function over one [`Context`], with
//! [`machines`] to work on every machine at once.
//!
//! `up` ([`up`]) runs them in this order: [`resolve`] the inputs and topology → [`preflight`]
//! checks → [`render`] the lab's files → [`boot`] every machine at once → [`assign`] each its
//! planned address → [`apply`] k0sctl and write the kubeconfig → [`health`]. [`destroy`],
//! [`halt`] and [`backup`] (with restore) are steps too; restore and [`drill`] compose `up`'s
//! steps instead of calling a command. [`image`], [`kairos`], [`doctor`] and [`probe`] are the
//! other commands' work.
//!
//! [`Context`]: context::Context

pub mod apply;
pub mod assign;
pub mod backup;
pub mod boot;
pub mod cache;
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
