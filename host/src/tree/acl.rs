//! (skeleton)
pub fn digest_id(user_password: &str) -> String {
    let _ = user_password;
    todo!()
}
