//! Files only their owner may read, on Windows: the secrets file gets a DACL
//! with a single entry, full control for the current user, and inheritance
//! from its folder removed (a protected DACL), set through the Windows API
//! (advapi32, via `windows-sys`), not by shelling out to `icacls`. On Unix
//! the same is mode 0600, set when the file is created (cluster.rs).
//!
//! Besides the test hook's two kill(2) calls (steps.rs), this is the
//! workspace's only unsafe code: foreign calls into advapi32 with buffers
//! this module owns, each checked for failure.
#![allow(unsafe_code)]

use anyhow::{bail, Result};
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_SUCCESS, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    SetEntriesInAclW, SetNamedSecurityInfoW, EXPLICIT_ACCESS_W, SET_ACCESS, SE_FILE_OBJECT,
    TRUSTEE_IS_SID, TRUSTEE_IS_USER, TRUSTEE_W,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, TokenUser, ACL, DACL_SECURITY_INFORMATION, NO_INHERITANCE,
    PROTECTED_DACL_SECURITY_INFORMATION, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::FILE_ALL_ACCESS;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

/// The current user's TOKEN_USER, in a buffer that keeps its SID alive.
struct CurrentUser(Vec<u64>);

impl CurrentUser {
    fn get() -> Result<CurrentUser> {
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: GetCurrentProcess returns a pseudo-handle; `token` is a
        // valid out pointer.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            bail!(
                "OpenProcessToken failed: {}",
                std::io::Error::last_os_error()
            );
        }
        let mut len = 0u32;
        // SAFETY: a size query with a null buffer, as documented.
        unsafe { GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut len) };
        let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
        // SAFETY: `buf` holds at least `len` bytes, 8-aligned.
        let ok = unsafe {
            GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len)
        };
        // SAFETY: `token` was opened above.
        unsafe { CloseHandle(token) };
        if ok == 0 {
            bail!(
                "GetTokenInformation failed: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(CurrentUser(buf))
    }

    fn sid(&self) -> *mut core::ffi::c_void {
        // SAFETY: the buffer starts with the TOKEN_USER GetTokenInformation
        // wrote; its SID points into the same buffer.
        unsafe { (*(self.0.as_ptr() as *const TOKEN_USER)).User.Sid }
    }
}

/// Gives `path` a protected DACL granting full control to the current user
/// alone.
pub fn restrict(path: &Path) -> Result<()> {
    let user = CurrentUser::get()?;
    let access = EXPLICIT_ACCESS_W {
        grfAccessPermissions: FILE_ALL_ACCESS,
        grfAccessMode: SET_ACCESS,
        grfInheritance: NO_INHERITANCE,
        Trustee: TRUSTEE_W {
            TrusteeForm: TRUSTEE_IS_SID,
            TrusteeType: TRUSTEE_IS_USER,
            ptstrName: user.sid().cast(),
            ..Default::default()
        },
    };
    let mut acl: *mut ACL = std::ptr::null_mut();
    // SAFETY: one entry, no old ACL; `acl` receives a LocalAlloc'd ACL.
    let rc = unsafe { SetEntriesInAclW(1, &access, std::ptr::null(), &mut acl) };
    if rc != ERROR_SUCCESS {
        bail!(
            "SetEntriesInAclW failed: {}",
            std::io::Error::from_raw_os_error(rc as i32)
        );
    }
    let name = wide(path);
    // SAFETY: `name` is NUL-terminated; `acl` is the ACL built above.
    let rc = unsafe {
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            acl,
            std::ptr::null(),
        )
    };
    // SAFETY: allocated by SetEntriesInAclW.
    unsafe { LocalFree(acl.cast()) };
    if rc != ERROR_SUCCESS {
        bail!(
            "restricting {} to its owner: {}",
            path.display(),
            std::io::Error::from_raw_os_error(rc as i32)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_sys::Win32::Security::Authorization::GetNamedSecurityInfoW;
    use windows_sys::Win32::Security::{
        AclSizeInformation, EqualSid, GetAce, GetAclInformation, GetSecurityDescriptorControl,
        ACCESS_ALLOWED_ACE, ACL_SIZE_INFORMATION, PSECURITY_DESCRIPTOR, SE_DACL_PROTECTED,
    };

    /// What the DACL of a file says, for checking [`restrict`].
    #[derive(Debug, PartialEq, Eq)]
    pub struct Dacl {
        pub entries: u32,
        /// The first entry allows access to the current user.
        pub first_is_current_user: bool,
        pub first_mask: u32,
        /// Inheritance from the parent folder is removed.
        pub protected: bool,
    }

    pub fn read(path: &Path) -> Result<Dacl> {
        let user = CurrentUser::get()?;
        let name = wide(path);
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: out pointers are valid; `sd` is LocalAlloc'd and freed below.
        let rc = unsafe {
            GetNamedSecurityInfoW(
                name.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dacl,
                std::ptr::null_mut(),
                &mut sd,
            )
        };
        if rc != ERROR_SUCCESS {
            bail!(
                "GetNamedSecurityInfoW failed: {}",
                std::io::Error::from_raw_os_error(rc as i32)
            );
        }
        let result = (|| {
            let mut control = 0u16;
            let mut revision = 0u32;
            // SAFETY: `sd` came from GetNamedSecurityInfoW.
            unsafe { GetSecurityDescriptorControl(sd, &mut control, &mut revision) };
            if dacl.is_null() {
                bail!("{} has no DACL (everyone has access)", path.display());
            }
            let mut info = ACL_SIZE_INFORMATION::default();
            // SAFETY: `dacl` points into `sd`; `info` is the right size.
            let ok = unsafe {
                GetAclInformation(
                    dacl,
                    (&mut info as *mut ACL_SIZE_INFORMATION).cast(),
                    std::mem::size_of::<ACL_SIZE_INFORMATION>() as u32,
                    AclSizeInformation,
                )
            };
            if ok == 0 {
                bail!(
                    "GetAclInformation failed: {}",
                    std::io::Error::last_os_error()
                );
            }
            let (mut first_is_current_user, mut first_mask) = (false, 0);
            if info.AceCount > 0 {
                let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
                // SAFETY: index 0 exists; `ace` points into the ACL.
                if unsafe { GetAce(dacl, 0, &mut ace) } != 0 {
                    let allowed = ace as *const ACCESS_ALLOWED_ACE;
                    // SAFETY: an ACE starts with its header; an allow ACE's SID
                    // starts at SidStart.
                    unsafe {
                        if (*allowed).Header.AceType == 0 {
                            first_mask = (*allowed).Mask;
                            let sid =
                                std::ptr::addr_of!((*allowed).SidStart) as *mut core::ffi::c_void;
                            first_is_current_user = EqualSid(sid, user.sid()) != 0;
                        }
                    }
                }
            }
            Ok(Dacl {
                entries: info.AceCount,
                first_is_current_user,
                first_mask,
                protected: control & SE_DACL_PROTECTED != 0,
            })
        })();
        // SAFETY: allocated by GetNamedSecurityInfoW.
        unsafe { LocalFree(sd) };
        result
    }

    #[test]
    fn a_secrets_file_is_readable_by_its_owner_only() {
        let dir = std::env::temp_dir().join(format!("pgrepl-acl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secrets.env");
        crate::secrets::write_private(&file, "POSTGRES_PASSWORD=x\n").unwrap();
        let dacl = read(&file).unwrap();
        say!("secrets.env DACL: {dacl:?}");
        if std::env::var_os("WINEPREFIX").is_some() {
            // Wine 8 keeps no DACL on a file: it maps one to Unix mode bits
            // and reads back a DACL made from them, so the entries set here
            // cannot be read back. What Wine can show: the calls succeeded.
            say!("under Wine: DACL not kept by Wine 8, the calls succeeded; ACL read-back is checked on Windows only");
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        assert_eq!(
            dacl,
            Dacl {
                entries: 1,
                first_is_current_user: true,
                first_mask: FILE_ALL_ACCESS,
                protected: true,
            }
        );
        // A plain file in the same folder inherits the folder's entries.
        let plain = dir.join("plain.txt");
        std::fs::write(&plain, "x").unwrap();
        assert_ne!(
            read(&plain).unwrap(),
            dacl,
            "the check can tell a plain file apart"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
