//! What every leaf plan node of this crate (one service request chain, no inputs, one output
//! partition) says the same way to DataFusion: [`leaf_exec_methods!`] writes those
//! `ExecutionPlan` methods, and [`one_partition`] refuses any partition but the first.

/// The `ExecutionPlan` methods of a leaf node named `$name` whose struct has a `properties:
/// Arc<PlanProperties>` field: no children, no expressions, and `with_new_children` accepting
/// only none.
macro_rules! leaf_exec_methods {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
        }

        fn properties(&self) -> &std::sync::Arc<datafusion::physical_plan::PlanProperties> {
            &self.properties
        }

        fn children(&self) -> Vec<&std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
            Vec::new()
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &std::sync::Arc<dyn datafusion::physical_plan::PhysicalExpr>,
            ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion>,
        ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn with_new_children(
            self: std::sync::Arc<Self>,
            children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        ) -> datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
            if children.is_empty() {
                Ok(self)
            } else {
                Err(datafusion::error::DataFusionError::Internal(concat!($name, " has no children").into()))
            }
        }
    };
}

pub(crate) use leaf_exec_methods;

/// `Ok` for partition 0, the only one a leaf node of this crate has.
pub(crate) fn one_partition(name: &str, partition: usize) -> datafusion::error::Result<()> {
    if partition == 0 {
        Ok(())
    } else {
        Err(datafusion::error::DataFusionError::Internal(format!("{name} has one partition, not {partition}")))
    }
}
