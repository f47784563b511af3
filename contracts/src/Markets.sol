// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Markets: the on-chain record of the platform's governance decisions.
/// @notice The platform's signer approves markets the community voted for, resolves them with
/// the oracle's outcome, and records the verdict of disputes. Every decision emits an event that
/// the platform's indexer reads back.
contract Markets {
    enum State {
        None,
        Approved,
        Resolved
    }

    address public owner;
    mapping(uint256 => State) public stateOf;
    mapping(uint256 => bool) public outcomeOf;
    mapping(uint256 => bool) public disputeResolved;

    event MarketApproved(uint256 indexed marketId, address indexed by);
    event MarketResolved(uint256 indexed marketId, bool outcome);
    event DisputeResolved(uint256 indexed marketId, uint256 indexed disputeId, bool upheld);

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        require(msg.sender == owner, "Markets: caller is not the owner");
        _;
    }

    function approveMarket(uint256 marketId) external onlyOwner {
        require(stateOf[marketId] == State.None, "Markets: market already approved");
        stateOf[marketId] = State.Approved;
        emit MarketApproved(marketId, msg.sender);
    }

    function resolveMarket(uint256 marketId, bool outcome) external onlyOwner {
        require(stateOf[marketId] != State.Resolved, "Markets: market already resolved");
        stateOf[marketId] = State.Resolved;
        outcomeOf[marketId] = outcome;
        emit MarketResolved(marketId, outcome);
    }

    function resolveDispute(uint256 marketId, uint256 disputeId, bool upheld) external onlyOwner {
        require(!disputeResolved[disputeId], "Markets: dispute already resolved");
        disputeResolved[disputeId] = true;
        emit DisputeResolved(marketId, disputeId, upheld);
    }
}
