//! The login flow's tests, by what a user would notice; one set of fakes in [`fakes`].

mod fakes;

mod before_password;
mod codes;
mod field;
mod lockout;
mod oob;
mod policy;
mod recovery;
mod self_enroll;
