//! The AWS SDK's configuration for the SNS bus, the sink and `admin aws bootstrap`: the usual
//! sources (environment, profile, instance role; `AWS_ENDPOINT_URL` for a local endpoint), an
//! HTTP client on rustls with ring, and timeouts short enough that an unreachable AWS turns
//! into a 503 the device retries rather than a request that hangs.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// One attempt of a call that does not wait on purpose (publish, create, delete).
pub const SHORT_ATTEMPT: Duration = Duration::from_secs(5);

/// `attempt_timeout` bounds one HTTP attempt. It must exceed any long poll made with the
/// client: an attempt abandoned while SQS answers leaves the messages it received hidden for
/// a whole visibility timeout.
pub async fn sdk_config(attempt_timeout: Duration) -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(attempt_timeout)
                .operation_timeout(attempt_timeout * 3)
                .build(),
        )
        .load()
        .await
}

/// An SDK error with its cause chain: the SDK's own Display says only "service error".
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What `admin aws bootstrap` created (or found already there).
#[derive(serde::Serialize)]
pub struct Bootstrapped {
    pub topic_arn: String,
    pub sink_queue_url: String,
    pub dead_letter_queue_url: String,
    pub alert_queue_url: String,
}

/// Dead-lettered after this many receives, as in packaging/aws/quint-relay.yaml.
const MAX_RECEIVE_COUNT: u32 = 5;

/// The resources of packaging/aws/quint-relay.yaml (without IAM and encryption) under `name`.
/// Every call is idempotent: SNS and SQS return what exists when the attributes match.
pub async fn bootstrap(config: &SdkConfig, name: &str) -> anyhow::Result<Bootstrapped> {
    use anyhow::Context;
    let sns = aws_sdk_sns::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let topic_arn = sns
        .create_topic()
        .name(format!("{name}-events.fifo"))
        .attributes("FifoTopic", "true")
        .attributes("ContentBasedDeduplication", "false")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("creating the SNS topic: {}", describe(&e)))?
        .topic_arn
        .context("SNS returned no topic ARN")?;

    let queue = |queue: String, dead_letters: Option<String>| {
        let sqs = sqs.clone();
        async move {
            let mut create = sqs
                .create_queue()
                .queue_name(&queue)
                .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
                .attributes(
                    aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod,
                    "1209600",
                );
            if let Some(target) = dead_letters {
                create = create
                    .attributes(
                        aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                        "60",
                    )
                    .attributes(
                        aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                        serde_json::json!({
                            "deadLetterTargetArn": target,
                            "maxReceiveCount": MAX_RECEIVE_COUNT.to_string(),
                        })
                        .to_string(),
                    );
            }
            let url = create
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("creating queue {queue}: {}", describe(&e)))?
                .queue_url
                .with_context(|| format!("SQS returned no URL for {queue}"))?;
            let arn = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("reading queue {queue}: {}", describe(&e)))?
                .attributes
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                        .cloned()
                })
                .with_context(|| format!("SQS returned no ARN for {queue}"))?;
            anyhow::Ok((url, arn))
        }
    };
    let (dead_letter_queue_url, dead_letter_arn) =
        queue(format!("{name}-sink-dlq.fifo"), None).await?;
    let (sink_queue_url, sink_arn) =
        queue(format!("{name}-sink.fifo"), Some(dead_letter_arn)).await?;
    let (_, alert_dead_letter_arn) = queue(format!("{name}-alerts-dlq.fifo"), None).await?;
    let (alert_queue_url, alert_arn) =
        queue(format!("{name}-alerts.fifo"), Some(alert_dead_letter_arn)).await?;

    for (url, arn, filter) in [
        (&sink_queue_url, &sink_arn, None),
        (
            &alert_queue_url,
            &alert_arn,
            Some(serde_json::json!({"decision": ["deny", "alert"]}).to_string()),
        ),
    ] {
        // The topic may send to the queue, and nothing else may.
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }],
        });
        sqs.set_queue_attributes()
            .queue_url(url)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::Policy,
                policy.to_string(),
            )
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("setting the policy of {url}: {}", describe(&e)))?;
        let mut subscribe = sns
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", "true")
            .return_subscription_arn(true);
        if let Some(filter) = filter {
            subscribe = subscribe
                .attributes("FilterPolicyScope", "MessageAttributes")
                .attributes("FilterPolicy", filter);
        }
        subscribe
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("subscribing {url} to the topic: {}", describe(&e)))?;
    }
    Ok(Bootstrapped {
        topic_arn,
        sink_queue_url,
        dead_letter_queue_url,
        alert_queue_url,
    })
}
