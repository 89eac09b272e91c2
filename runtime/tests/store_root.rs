//! The store location rule. Alone in its test binary: it changes the environment.

use kiln_runtime::store::{default_root, StoreError};

#[test]
fn default_root_follows_flag_env_xdg_home() {
    let saved: Vec<_> = ["KILN_ROOT", "XDG_DATA_HOME", "HOME"]
        .iter()
        .map(|k| (k, std::env::var_os(k)))
        .collect();
    std::env::set_var("KILN_ROOT", "/k");
    std::env::set_var("XDG_DATA_HOME", "/x");
    std::env::set_var("HOME", "/h");
    assert_eq!(
        default_root(Some("/flag".into())).unwrap(),
        std::path::PathBuf::from("/flag")
    );
    assert_eq!(default_root(None).unwrap(), std::path::PathBuf::from("/k"));
    std::env::set_var("KILN_ROOT", "");
    assert_eq!(
        default_root(None).unwrap(),
        std::path::PathBuf::from("/x/kiln")
    );
    std::env::remove_var("XDG_DATA_HOME");
    assert_eq!(
        default_root(None).unwrap(),
        std::path::PathBuf::from("/h/.local/share/kiln")
    );
    std::env::remove_var("HOME");
    std::env::remove_var("KILN_ROOT");
    assert!(matches!(default_root(None), Err(StoreError::NoRoot)));
    for (k, v) in saved {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
}
