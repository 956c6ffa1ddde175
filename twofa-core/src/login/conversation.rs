//! Talking to the user: the conversation the PAM module provides, and the code prompt.

use zeroize::Zeroizing;

use super::{CodeSource, Request};

/// The prompt for the code, the same for every user and every path.
pub const CODE_PROMPT: &str = "Verification code: ";

/// The conversation failed (the client went away, or the application has no conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationError;

/// Talking to the user, as the PAM conversation does.
pub trait Conversation {
    /// Asks with echo off; `Ok(None)` when the application returned no answer.
    fn ask_hidden(&mut self, prompt: &str)
        -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError>;
    /// Shows a message the user must see (PAM_ERROR_MSG, even under PAM_SILENT: sudo always
    /// sets it). Best effort: an application that can't show it (vsftpd) is no reason to fail.
    fn show_error(&mut self, message: &str);
    /// Shows text the user must read to go on (PAM_TEXT_INFO, even under PAM_SILENT): the QR
    /// code and recovery codes of a self-enrollment.
    fn show_notice(&mut self, message: &str);
    /// Shows an advisory line (PAM_TEXT_INFO); the application's PAM_SILENT hides it.
    fn show_info(&mut self, message: &str);
}

/// The answer to the code prompt: asked, or the code the `concat` line cut from the field.
pub(super) fn answer(
    req: &Request<'_>,
    conv: &mut dyn Conversation,
) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
    match &req.code {
        CodeSource::Ask => conv.ask_hidden(CODE_PROMPT),
        CodeSource::Field(code) => Ok(code.clone()),
    }
}
