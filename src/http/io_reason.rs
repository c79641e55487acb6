//! [`describe_io`]: an I/O error as a short lowercase reason, for the
//! errors a node meets when it binds or reads its files.

use std::io;

/// A short lowercase reason for the errors people actually meet when binding
/// ("address in use" rather than "Address already in use (os error 98)").
pub fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::AddrInUse => "address in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available on this host".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => {
            let text = error.to_string();
            let mut chars = text.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_lowercase().chain(chars).collect()
            })
        }
    }
}
