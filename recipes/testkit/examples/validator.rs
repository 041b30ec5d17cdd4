//! `validator`: rejects a create or setData under its root whose data is not UTF-8 or is longer
//! than [`DATA_BYTES_MAX`], with BadArguments and a reason; allows everything else.

use zkw_guest::{Ctx, Reject, Validate, WriteKind};

/// The longest data this validator accepts (bytes).
const DATA_BYTES_MAX: usize = 64;

fn check(_ctx: &mut Ctx, write: &Validate) -> Result<(), Reject> {
    if write.kind == WriteKind::Delete {
        return Ok(());
    }
    if write.data.len() > DATA_BYTES_MAX {
        return Err(Reject::bad_arguments(format!(
            "{}: data is {} bytes, more than {DATA_BYTES_MAX}",
            write.path,
            write.data.len()
        )));
    }
    if std::str::from_utf8(&write.data).is_err() {
        return Err(Reject::bad_arguments(format!(
            "{}: data is not UTF-8",
            write.path
        )));
    }
    Ok(())
}

zkw_guest::recipe! { validate: check }

#[cfg(test)]
mod tests {
    use super::*;
    use zkw_guest::testing::MockTree;
    use zkw_guest::{Error, Op};

    #[test]
    fn rejects_long_or_binary_data_with_a_reason() {
        let mut tree = MockTree::new("validator", "/v");
        let long = vec![b'x'; DATA_BYTES_MAX + 1];
        let run = tree
            .validate(&RECIPE, &MockTree::create_op("/v/a", &long))
            .unwrap();
        assert_eq!(run.code, Error::BadArguments.code());
        assert!(
            run.result_text().contains("more than 64"),
            "{}",
            run.result_text()
        );
        let binary = Op::SetData {
            path: "/v".into(),
            data: vec![0xff, 0xfe],
            version: -1,
        };
        let run = tree.validate(&RECIPE, &binary).unwrap();
        assert_eq!(run.code, Error::BadArguments.code());
        assert!(run.result_text().contains("not UTF-8"));
    }

    #[test]
    fn the_client_write_fails_with_the_code() {
        let mut tree = MockTree::new("validator", "/v");
        let long = vec![b'x'; DATA_BYTES_MAX + 1];
        let outcome = tree.write(&RECIPE, &MockTree::create_op("/v/a", &long));
        assert_eq!(outcome, Err(Error::BadArguments));
        assert!(tree.get("/v/a").is_none());
        let exact = vec![b'x'; DATA_BYTES_MAX];
        tree.write(&RECIPE, &MockTree::create_op("/v/a", &exact))
            .unwrap();
        assert_eq!(tree.data("/v/a").unwrap(), exact);
    }

    #[test]
    fn deletes_and_paths_outside_are_not_its_business() {
        let mut tree = MockTree::new("validator", "/v");
        let delete = Op::Delete {
            path: "/v".into(),
            version: -1,
        };
        assert!(tree.validate(&RECIPE, &delete).unwrap().succeeded());
        let outside = MockTree::create_op("/w", &[0xff]);
        assert!(tree.validate(&RECIPE, &outside).is_none());
        tree.write(&RECIPE, &outside).unwrap();
    }
}
