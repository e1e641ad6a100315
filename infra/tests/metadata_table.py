"""The metadata table exactly as infra/template.yaml declares it, as boto3 `create_table` arguments.

The offline checks (moto_asl_check.py, scripts/lambda-smoke) create the table from the template
itself, so a change to its keys, index or projection reaches them without a second copy.
"""

import pathlib

import yaml

TEMPLATE = pathlib.Path(__file__).resolve().parents[1] / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !If, !Sub, …) as plain values."""


def _untagged(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


_CloudFormationLoader.add_multi_constructor("!", _untagged)


def create_table_args(name):
    """`dynamodb.create_table(**create_table_args(name))` makes the template's MetadataTable."""
    template = yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)
    table = template["Resources"]["MetadataTable"]["Properties"]
    indexes = [{key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
               for index in table["GlobalSecondaryIndexes"]]
    return {"TableName": name, "BillingMode": table["BillingMode"],
            "AttributeDefinitions": table["AttributeDefinitions"], "KeySchema": table["KeySchema"],
            "GlobalSecondaryIndexes": indexes}
