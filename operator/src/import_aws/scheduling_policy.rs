//! CreateSchedulingPolicy → SchedulingPolicy.

use barge_crds::scheduling_policy::{FairsharePolicy, ShareAttributes};
use barge_crds::{SchedulingPolicy, SchedulingPolicySpec};

use super::names::{convert_name, NameLimit};
use super::reader::ObjectReader;
use super::{metadata, note_resource_tags, BargeObject, ImportError, Notes};

pub(crate) fn convert(
    reader: &ObjectReader<'_>,
    notes: &mut Notes,
) -> Result<BargeObject, ImportError> {
    let aws_name = reader.required_string("name")?;
    let name = convert_name(
        &aws_name,
        &reader.field_path("name"),
        NameLimit::Object,
        notes,
    )?;
    let policy = reader
        .object("fairsharePolicy")?
        .ok_or_else(|| ImportError::field(reader.field_path("fairsharePolicy"), "required"))?;
    let share_decay_seconds = policy.int("shareDecaySeconds")?;
    let compute_reservation = policy.int("computeReservation")?;
    let mut share_distribution = Vec::new();
    for (path, item) in policy.list("shareDistribution")? {
        let entry = ObjectReader::new(item, &path)?;
        let share_identifier = entry.required_string("shareIdentifier")?;
        let weight_factor = entry.float("weightFactor")?;
        entry.finish(notes);
        share_distribution.push(ShareAttributes {
            share_identifier,
            weight_factor,
        });
    }
    policy.finish(notes);
    note_resource_tags(reader, notes);
    let spec = SchedulingPolicySpec {
        fairshare_policy: FairsharePolicy {
            share_decay_seconds,
            compute_reservation,
            share_distribution,
        },
    };
    let mut object = SchedulingPolicy::new(&name, spec);
    object.metadata = metadata(name, None);
    Ok(BargeObject::SchedulingPolicy(object))
}
