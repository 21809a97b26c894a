//! Range-partitioned reads: a whole-table read split on an integer primary key into N
//! `WHERE` ranges, read at once, each by its own `Source::read` (its own connection for the
//! SQL sources, its own request for the HTTP ones). Works for every connector, since the
//! ranges are ordinary predicates. Each range reads its own snapshot; a row whose key does not
//! change is read exactly once.

use std::sync::Arc;

use dataloader_core::{
    Error, Parallelism, Predicate, Probe, ReadOutput, ReadRequest, Result, Source, SourceSchema,
    TableSpec, Watermark, WatermarkKind,
};

/// The ranges to read, or `None` for one plain read.
pub async fn ranges(
    source: &Arc<dyn Source>,
    request: &ReadRequest,
    schema: &SourceSchema,
    spec: &TableSpec,
    max_connections: Option<u32>,
) -> Result<Option<Vec<Predicate>>> {
    let Some(parallelism) = spec.parallelism()? else {
        return Ok(None);
    };
    if request.watermark.is_some() {
        // The watermark's maximum must come from the snapshot the rows come from.
        return Ok(None);
    }
    let key = &spec.primary_keys[0];
    let (Some(min), Some(max)) = (
        source
            .probe(&request.object, schema, &Probe::Min(key.clone()))
            .await?,
        source
            .probe(&request.object, schema, &Probe::Max(key.clone()))
            .await?,
    ) else {
        return Ok(None);
    };
    let integer = |w: &Watermark| {
        (w.kind == WatermarkKind::Integer)
            .then(|| w.value.parse::<i128>().ok())
            .flatten()
    };
    let (Some(low), Some(high)) = (integer(&min), integer(&max)) else {
        return match parallelism {
            Parallelism::Auto => Ok(None),
            Parallelism::Ranges(_) => Err(Error::config(
                "parallelism",
                format!(
                    "{}: parallel reads split an integer primary key, and \"{key}\" holds {} values",
                    spec.destination, min.kind.as_str()
                ),
            )),
        };
    };
    // Keys too wide for the arithmetic below are read in one piece.
    let Some(span) = high.checked_sub(low).and_then(|s| s.checked_add(1)) else {
        return Ok(None);
    };
    let wanted = match parallelism {
        Parallelism::Ranges(n) => i128::from(n),
        Parallelism::Auto if span < Parallelism::AUTO_MIN_SPAN => return Ok(None),
        Parallelism::Auto => std::thread::available_parallelism()
            .map(|n| n.get().min(8) as i128)
            .unwrap_or(2),
    };
    let n = wanted
        .min(i128::from(max_connections.unwrap_or(u32::MAX)))
        .min(span);
    if n < 2 {
        return Ok(None);
    }
    if span.checked_mul(n).is_none() {
        return Ok(None);
    }
    let bound = |i: i128| Watermark::new(WatermarkKind::Integer, (low + span * i / n).to_string());
    let mut ranges = Vec::new();
    for i in 0..n {
        let mut parts = Vec::new();
        if i > 0 {
            parts.push(Predicate::Ge(key.clone(), bound(i)?));
        }
        if i < n - 1 {
            parts.push(Predicate::Lt(key.clone(), bound(i + 1)?));
        }
        let range = Predicate::And(parts);
        // A key column the source does not enforce may hold NULLs: the first range reads them.
        ranges.push(if i == 0 {
            Predicate::Or(vec![range, Predicate::IsNull(key.clone())])
        } else {
            range
        });
    }
    Ok(Some(ranges))
}

/// Reads every range at once; batches arrive in whichever order the ranges produce them.
pub async fn read(
    source: &Arc<dyn Source>,
    request: ReadRequest,
    ranges: Vec<Predicate>,
) -> Result<ReadOutput> {
    let reads = ranges.into_iter().map(|range| {
        let mut part = request.clone();
        part.filter = Some(match request.filter.clone() {
            Some(filter) => Predicate::And(vec![filter, range]),
            None => range,
        });
        source.read(part)
    });
    let outputs = futures::future::try_join_all(reads).await?;
    let schema = outputs[0].schema.clone();
    let streams = outputs.into_iter().map(|o| o.batches);
    Ok(ReadOutput {
        schema,
        batches: Box::pin(futures::stream::select_all(streams)),
        captured_max: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_values() {
        let mut spec = TableSpec::new(
            "c",
            dataloader_core::SourceTable::parse("t").unwrap(),
            dataloader_core::TargetTable::parse("a.b.c").unwrap(),
        );
        spec.primary_keys = vec!["id".into()];
        for (value, expected) in [
            ("auto", Some(Parallelism::Auto)),
            ("4", Some(Parallelism::Ranges(4))),
            ("1", None),
        ] {
            spec.parallelism = Some(value.into());
            assert_eq!(spec.parallelism().unwrap(), expected, "{value}");
            spec.validate().unwrap();
        }
        for bad in ["0", "65", "many"] {
            spec.parallelism = Some(bad.into());
            assert!(spec.validate().is_err(), "{bad}");
        }
        spec.parallelism = Some("2".into());
        spec.primary_keys = vec!["a".into(), "b".into()];
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("single-column primary key"), "{err}");
    }
}
