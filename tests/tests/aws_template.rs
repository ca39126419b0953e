//! `packaging/aws/quint-relay.yaml`, the CloudFormation template for the SNS/SQS scale-out
//! path: `cfn-lint` (from PyPI, installed by scripts/test.sh and named by
//! `QUINT_TEST_CFN_LINT`) accepts it, and it declares what the relay and the sink rely on.

use std::path::PathBuf;
use std::process::Command;

use serde_yaml::Value;

fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/aws/quint-relay.yaml")
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Resources"][name]["Properties"]
}

/// A YAML value that may carry a CloudFormation tag (`!Ref`, `!GetAtt`), untagged.
fn plain(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    }
}

#[test]
fn cfn_lint_accepts_the_template() {
    let Some(cfn_lint) = std::env::var_os("QUINT_TEST_CFN_LINT") else {
        eprintln!("SKIPPED: QUINT_TEST_CFN_LINT is not set (scripts/test.sh installs cfn-lint)");
        return;
    };
    let output = Command::new(cfn_lint)
        .arg(template_path())
        .output()
        .expect("run cfn-lint");
    assert!(
        output.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_template_declares_what_the_relay_and_the_sink_rely_on() {
    let template: Value =
        serde_yaml::from_str(&std::fs::read_to_string(template_path()).unwrap()).unwrap();
    // FIFO end to end; deduplication by the event id the relay sets, not by content.
    let topic = resource(&template, "EventsTopic");
    assert_eq!(topic["FifoTopic"], Value::Bool(true));
    assert_eq!(topic["ContentBasedDeduplication"], Value::Bool(false));
    for queue in ["SinkQueue", "AlertsQueue", "SinkDeadLetterQueue"] {
        assert_eq!(
            resource(&template, queue)["FifoQueue"],
            Value::Bool(true),
            "{queue}"
        );
        assert_eq!(
            resource(&template, queue)["SqsManagedSseEnabled"],
            Value::Bool(true),
            "{queue}"
        );
    }
    // A message the sink cannot parse ends in the dead-letter queue.
    let redrive = &resource(&template, "SinkQueue")["RedrivePolicy"];
    assert!(redrive["deadLetterTargetArn"] != Value::Null);
    assert!(redrive["maxReceiveCount"] != Value::Null);
    // The sink parses the stamped event as the body: raw delivery.
    let sink = resource(&template, "SinkSubscription");
    assert_eq!(sink["RawMessageDelivery"], Value::Bool(true));
    // The alert-only queue receives deny and alert, by the message attribute the relay sets.
    let alerts = resource(&template, "AlertsSubscription");
    assert_eq!(
        alerts["FilterPolicyScope"],
        Value::from("MessageAttributes")
    );
    let decisions: Vec<&str> = alerts["FilterPolicy"]["decision"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(decisions, ["deny", "alert"]);
    // Least privilege: the relay publishes, the sink consumes its queue, nothing else.
    let actions = |policy: &str| -> Vec<String> {
        resource(&template, policy)["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|statement| -> Vec<String> {
                match plain(&statement["Action"]) {
                    Value::Sequence(list) => list
                        .iter()
                        .filter_map(|a| a.as_str().map(String::from))
                        .collect(),
                    single => single.as_str().map(String::from).into_iter().collect(),
                }
            })
            .collect()
    };
    assert_eq!(
        actions("RelayPublishPolicy"),
        ["sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"]
    );
    assert_eq!(
        actions("SinkConsumePolicy"),
        [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes"
        ]
    );
}
