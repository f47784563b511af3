// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Multicall3 (the subset jobfleet uses), for local chains.
/// @notice Same ABI as the Multicall3 deployed at 0xcA11bde05977b3631167028862bE2a173976CA11 on
/// most EVM chains, so the balance sync reads through either. Written for this project; only
/// `aggregate3` and `getEthBalance` are provided.
contract Multicall3 {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory results) {
        results = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool ok, bytes memory data) = calls[i].target.call(calls[i].callData);
            require(ok || calls[i].allowFailure, "Multicall3: call failed");
            results[i] = Result(ok, data);
        }
    }

    function getEthBalance(address addr) external view returns (uint256 balance) {
        return addr.balance;
    }
}
